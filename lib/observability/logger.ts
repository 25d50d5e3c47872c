import { Logger } from '@aws-lambda-powertools/logger';
import { redactingReplacer } from './redact.ts';
import { serviceNameOf } from './service.ts';

/**
 * Structured JSON logs; every record passes through the redaction replacer. The level
 * (`POWERTOOLS_LOG_LEVEL`) is read once, when this module loads, and each invocation returns to it:
 * whatever sets the variable must do so before anything that logs is imported (Lambda does;
 * `npm start` imports lib/ modules that log only after it has set the handlers' environment).
 */
export const logger = new Logger({
  serviceName: serviceNameOf(process.env),
  jsonReplacerFn: redactingReplacer,
});
