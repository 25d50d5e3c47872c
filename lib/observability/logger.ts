import { Logger } from '@aws-lambda-powertools/logger';
import { redactingReplacer } from './redact.ts';
import { serviceNameOf } from './service.ts';

/** Structured JSON logs; every record passes through the redaction replacer. */
export const logger = new Logger({
  serviceName: serviceNameOf(process.env),
  jsonReplacerFn: redactingReplacer,
});
