import { Logger } from '@aws-lambda-powertools/logger';
import { getConfig } from '../config.ts';
import { redactingReplacer } from './redact.ts';

/** Structured JSON logs; every record passes through the redaction replacer. */
export const logger = new Logger({
  serviceName: getConfig().serviceName,
  jsonReplacerFn: redactingReplacer,
});
