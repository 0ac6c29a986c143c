import type { PrimitiveType } from "../contract/primitives.js";
import { CounterMachine } from "./counter.js";
import { ElectionMachine } from "./election.js";
import { LockMachine } from "./lock.js";
import { CounterMapMachine } from "./counter-map.js";
import { IndexedMapMachine } from "./indexed-map.js";
import type { MachineFactory, StateMachine } from "./machine.js";
import { SetMachine } from "./set.js";
import { ListMachine } from "./list.js";
import { MultiMapMachine } from "./multi-map.js";
import { ValueMachine } from "./value.js";
import { MapMachine } from "./map.js";

/** How to build each primitive type's machine. Every type must be here: a missing one is a bug. */
export const machineFactories: { [T in PrimitiveType]?: MachineFactory<T> } = {
  counter: { create: () => new CounterMachine(), restore: (saved) => CounterMachine.restore(saved) },
  value: { create: () => new ValueMachine(), restore: (saved) => ValueMachine.restore(saved) },
  map: { create: () => new MapMachine(), restore: (saved) => MapMachine.restore(saved) },
  set: { create: () => new SetMachine(), restore: (saved) => SetMachine.restore(saved) },
  list: { create: () => new ListMachine(), restore: (saved) => ListMachine.restore(saved) },
  multiMap: { create: () => new MultiMapMachine(), restore: (saved) => MultiMapMachine.restore(saved) },
  lock: { create: () => new LockMachine(), restore: (saved) => LockMachine.restore(saved) },
  election: { create: () => new ElectionMachine(), restore: (saved) => ElectionMachine.restore(saved) },
  indexedMap: { create: () => new IndexedMapMachine(), restore: (saved) => IndexedMapMachine.restore(saved) },
  counterMap: { create: () => new CounterMapMachine(), restore: (saved) => CounterMapMachine.restore(saved) },
};

export function createMachine<T extends PrimitiveType>(type: T): StateMachine<T> {
  const factory = machineFactories[type] as MachineFactory<T> | undefined;
  if (factory === undefined) throw new Error(`no state machine for primitive type ${type}`);
  return factory.create();
}

export function restoreMachine<T extends PrimitiveType>(type: T, saved: unknown): StateMachine<T> {
  const factory = machineFactories[type] as MachineFactory<T> | undefined;
  if (factory === undefined) throw new Error(`no state machine for primitive type ${type}`);
  return factory.restore(saved);
}
