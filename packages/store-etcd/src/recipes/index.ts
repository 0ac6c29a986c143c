import type { PrimitiveType } from "@atomix-ts/core";
import type { Recipe } from "../recipe.js";
import { counterRecipe } from "./counter.js";
import { electionRecipe } from "./election.js";
import { lockRecipe } from "./lock.js";
import { mapRecipe } from "./map.js";
import { valueRecipe } from "./value.js";

/** Every primitive type's etcd recipe. */
export const recipes: { [T in PrimitiveType]?: Recipe<T> } = {
  counter: counterRecipe,
  value: valueRecipe,
  map: mapRecipe,
  lock: lockRecipe,
  election: electionRecipe,
};
