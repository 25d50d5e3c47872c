import { Logger } from '@aws-lambda-powertools/logger';
import { redactingReplacer } from './redact.ts';

/** Structured JSON logs; every record passes through the redaction replacer. */
export const logger = new Logger({
  serviceName: 'b24-message-editor',
  jsonReplacerFn: redactingReplacer,
});
