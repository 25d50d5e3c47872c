/** The `service` of log lines and of the metrics' dimension when `POWERTOOLS_SERVICE_NAME` is unset. */
export const DEFAULT_SERVICE_NAME = 'b24-message-editor';

/**
 * The service name from the environment (`POWERTOOLS_SERVICE_NAME`, trimmed; unset or blank: the
 * default). The logger and the metrics read it when their modules load, before the configuration
 * is, so that importing them never depends on the rest of the environment being valid.
 */
export function serviceNameOf(env: Readonly<Record<string, string | undefined>>): string {
  const raw = env.POWERTOOLS_SERVICE_NAME?.trim();
  return raw ? raw : DEFAULT_SERVICE_NAME;
}
