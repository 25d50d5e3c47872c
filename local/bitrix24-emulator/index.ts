export { MAX_BATCH_COMMANDS } from './batch.ts';
export { type DemoPortal, seedDemoPortal } from './demo.ts';
export { startBitrix24Emulator } from './emulator.ts';
export { MAX_ATTACH_CHARS, MAX_MESSAGE_CODE_POINTS } from './message-fields.ts';
export { MASK } from './redaction.ts';
export type {
  Bitrix24Emulator,
  BotOwner,
  CallRecord,
  EmulatedMessage,
  EmulatorOptions,
  Fault,
  FaultKind,
  OAuthGrant,
  RandomFaults,
  RateLimits,
  SeedMessage,
  SuccessShape,
} from './types.ts';
