export { FailureLimit, type FailureLimitOptions } from './failure-limit.ts';
export {
  type CallerKeyParts,
  KEY_ID_LENGTH,
  KEY_ID_PATTERN,
  newCallerKey,
  parseCallerKey,
  SECRET_LENGTH,
} from './keys.ts';
export {
  CALLER_KEY_SETTINGS,
  CallerKeys,
  type CallerKeysOptions,
  type CallerRecord,
  type CallerRefusal,
  type CallerVerdict,
  checkCallerInput,
  checkKeyId,
} from './store.ts';
