export { MAX_BATCH_COMMANDS } from './batch.ts';
export { type DemoPortal, seedDemoPortal } from './demo.ts';
export { startBitrix24Emulator } from './emulator.ts';
export { MAX_ATTACH_CHARS, MAX_MESSAGE_CODE_POINTS } from './message-fields.ts';
export { LEGACY_EDIT_WINDOW_SECONDS } from './portal.ts';
export { MASK } from './redaction.ts';
export type {
  Bitrix24Emulator,
  BotOwner,
  CallRecord,
  EmulatedBot,
  EmulatedChat,
  EmulatedMessage,
  EmulatorOptions,
  Fault,
  FaultKind,
  InferredRules,
  OAuthGrant,
  RandomFaults,
  RateLimits,
  SeedMessage,
  SuccessShape,
} from './types.ts';
