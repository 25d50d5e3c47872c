export {
  SourceError,
  SourceErrorCode,
  type SourceErrorInit,
  StatusRenderError,
  StatusRenderErrorCode,
} from './errors.ts';
export { type RenderStatusOptions, type RenderStatusResult, renderStatus } from './render.ts';
export {
  type FetchSourceOptions,
  fetchSource,
  type HealthData,
  mapWithConcurrency,
  SOURCE_MAX_BYTES,
} from './sources.ts';
export {
  assertValidStatusSpecs,
  type HttpHealthSource,
  type HttpJsonSource,
  type NoSource,
  type OnSourceError,
  type ParseStatusInputOptions,
  parseStatusInput,
  SOURCE_TIMEOUT_DEFAULT_MS,
  SOURCE_TIMEOUT_MAX_MS,
  type StatusSource,
  type StatusSpec,
  type StatusSpecIssue,
  type StatusStaticFields,
} from './spec.ts';
export {
  type BuiltinTemplateData,
  builtinTemplateData,
  formatNow,
  MESSAGE_MAX_CHARS,
  type RenderTemplateOptions,
  renderTemplate,
} from './template.ts';
