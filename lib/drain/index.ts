export {
  createDrain,
  type Drain,
  type DrainDeps,
  type Invocation,
} from './drain.ts';
export { byMessage, INVALID_EDIT, incomingOf, parseRecords, toDrainRecord } from './plan.ts';
export type { DrainRecord, ParsedEdit, RecordDecision } from './types.ts';
