export { logger } from './logger.ts';
export { MetricUnit, metrics } from './metrics.ts';
export { MASK, redact, redactingReplacer, redactString, registerSecret } from './redact.ts';
