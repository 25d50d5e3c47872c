export { logger } from './logger.ts';
export { MetricUnit, metrics } from './metrics.ts';
export {
  MASK,
  maskSecretValues,
  redact,
  redactingReplacer,
  redactString,
  registerSecret,
} from './redact.ts';
