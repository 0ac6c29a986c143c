import type { PrimitiveType } from "../contract/primitives.js";
import { CounterMachine } from "./counter.js";
import type { MachineFactory, StateMachine } from "./machine.js";

/** How to build each primitive type's machine. Every type must be here: a missing one is a bug. */
export const machineFactories: { [T in PrimitiveType]?: MachineFactory<T> } = {
  counter: { create: () => new CounterMachine(), restore: (saved) => CounterMachine.restore(saved) },
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
