export { PortalNotFoundError, SecretInvalidError, SecretsUnavailableError } from './errors.ts';
export {
  type BotCredentials,
  DEFAULT_OAUTH_URL,
  MAX_BOT_TOKEN_LENGTH,
  type OAuthCredentials,
  type PortalSecret,
  parsePortalSecret,
  serializePortalSecret,
  type WebhookCredentials,
  withOAuthTokens,
} from './schema.ts';
export { createSecretStore, type SecretStore, type SecretStoreOptions } from './store.ts';
