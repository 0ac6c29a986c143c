import type { PrimitiveType } from "@atomix-ts/core";
import type { Recipe } from "../recipe.js";
import { counterMapRecipe } from "./counter-map.js";
import { counterRecipe } from "./counter.js";
import { electionRecipe } from "./election.js";
import { indexedMapRecipe } from "./indexed-map.js";
import { listRecipe } from "./list.js";
import { lockRecipe } from "./lock.js";
import { mapRecipe } from "./map.js";
import { multiMapRecipe } from "./multi-map.js";
import { setRecipe } from "./set.js";
import { valueRecipe } from "./value.js";

/** Every primitive type's etcd recipe: the type makes a missing one a compile error. */
export const recipes: { [T in PrimitiveType]: Recipe<T> } = {
  counter: counterRecipe,
  value: valueRecipe,
  map: mapRecipe,
  set: setRecipe,
  list: listRecipe,
  indexedMap: indexedMapRecipe,
  counterMap: counterMapRecipe,
  multiMap: multiMapRecipe,
  lock: lockRecipe,
  election: electionRecipe,
};
