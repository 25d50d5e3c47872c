export type { CallStats } from './apply.ts';
export { createDrain, type Drain, type DrainDeps, type Invocation } from './drain.ts';
export { type DrainOptions, normaliseDrainOptions, type ResolvedDrainOptions } from './options.ts';
export {
  FAILED_QUEUE_UNAVAILABLE,
  INVALID_EDIT,
  MAX_ATTEMPTS,
  mergeEdits,
  parseRecords,
  planDecisions,
  propagateFifo,
  settleDeadLetters,
  toDrainRecord,
} from './plan.ts';
export { DrainState, waitForRoom } from './portal-state.ts';
export type { DrainRecord, EditOutcome, FailedEdit, ParsedEdit, RecordDecision } from './types.ts';
