/**
 * Routing rules: which store a primitive lives in, by its type, its full name (scope included)
 * and its tags. The first rule that matches wins; primitives no rule matches go to the default
 * store. Store-agnostic: rules name stores, they never build them.
 */
import { InvalidError } from "../errors.js";
import { isPrimitiveType } from "../names.js";
import type { PrimitiveType } from "../contract/primitives.js";
import type { PrimitiveRef } from "../contract/runtime.js";

export interface RouteRule {
  /** Primitive types the rule applies to (any type when absent). */
  type?: PrimitiveType | PrimitiveType[] | undefined;
  /**
   * Name patterns over the full name (`scope/name`): `*` matches within one `/`-separated
   * part, `**` matches across parts, anything else matches itself. Any name when absent.
   */
  name?: string | string[] | undefined;
  /** Tags the primitive must all carry (`getCounter("x", { tags: [...] })`). */
  tags?: string[] | undefined;
  /** The store the matching primitives live in. */
  store: string;
}

interface CompiledRule {
  readonly types: ReadonlySet<string> | undefined;
  readonly names: RegExp[] | undefined;
  readonly tags: readonly string[];
  readonly store: string;
}

/** Turns a name pattern into an anchored regular expression. */
export function compileNamePattern(pattern: string): RegExp {
  if (typeof pattern !== "string" || pattern.length === 0) throw new InvalidError("a name pattern must be a non-empty string");
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") {
      if (pattern[i + 1] === "*") {
        source += ".*";
        i++;
      } else source += "[^/]*";
    } else source += c.replace(/[.+?^${}()|[\]\\-]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

function asList<T>(value: T | T[] | undefined): T[] | undefined {
  return value === undefined ? undefined : Array.isArray(value) ? value : [value];
}

/** Compiled rules with their default store. */
export class Router {
  private readonly rules: CompiledRule[];

  /** @throws InvalidError for a malformed rule or a rule naming a store not in `stores`. */
  constructor(
    rules: readonly RouteRule[],
    readonly defaultStore: string,
    stores: ReadonlySet<string>,
  ) {
    if (!stores.has(defaultStore)) throw new InvalidError(`default store ${JSON.stringify(defaultStore)} is not configured`);
    this.rules = rules.map((rule, index) => {
      const where = `routing rule ${index + 1}`;
      if (typeof rule !== "object" || rule === null) throw new InvalidError(`${where} must be an object`);
      if (typeof rule.store !== "string" || !stores.has(rule.store)) {
        throw new InvalidError(`${where} routes to store ${JSON.stringify(rule.store)}, which is not configured`);
      }
      const types = asList(rule.type);
      for (const type of types ?? []) {
        if (!isPrimitiveType(type)) throw new InvalidError(`${where} names unknown primitive type ${JSON.stringify(type)}`);
      }
      const tags = asList(rule.tags) ?? [];
      if (!tags.every((tag) => typeof tag === "string")) throw new InvalidError(`${where}: tags must be strings`);
      const names = asList(rule.name);
      return {
        types: types === undefined ? undefined : new Set(types),
        names: names?.map((pattern) => {
          try {
            return compileNamePattern(pattern);
          } catch (error) {
            throw new InvalidError(`${where}: ${(error as Error).message}`);
          }
        }),
        tags,
        store: rule.store,
      };
    });
  }

  /** The store a primitive lives in. */
  route(ref: PrimitiveRef): string {
    for (const rule of this.rules) {
      if (rule.types !== undefined && !rule.types.has(ref.type)) continue;
      if (rule.names !== undefined && !rule.names.some((re) => re.test(ref.name))) continue;
      if (rule.tags.length > 0 && !rule.tags.every((tag) => ref.tags?.includes(tag) === true)) continue;
      return rule.store;
    }
    return this.defaultStore;
  }
}
