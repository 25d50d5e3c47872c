import type { EditFields } from '../edits/types.ts';
import { AppError } from '../errors.ts';
import { SourceError } from './errors.ts';
import { fetchSource } from './sources.ts';
import type { StatusSpec } from './spec.ts';
import { renderTemplate } from './template.ts';

export interface RenderStatusOptions {
  /** Allow plain-HTTP sources (local stack only). */
  allowHttp: boolean;
  /** The moment shown as `now` / `nowIso`. */
  now: Date;
  /** The Lambda deadline; an abort makes the result `failed` (code `SOURCE_ABORTED`). */
  signal?: AbortSignal;
}

/**
 * - `render`: send `fields`. `sourceError` is set when the source failed and `onSourceError`'s
 *   template was rendered instead of the normal one.
 * - `keep`: the source failed and the spec says to leave the message as it is.
 * - `failed`: nothing to send: the template did not render (too long, empty), or the caller's
 *   deadline aborted the source read.
 */
export type RenderStatusResult =
  | { kind: 'render'; fields: EditFields; sourceError?: SourceError }
  | { kind: 'keep'; error: SourceError }
  | { kind: 'failed'; error: AppError };

function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  return new AppError('STATUS_RENDER_FAILED', `Status render failed: ${String(error)}`, 500, {
    cause: error,
  });
}

function withStaticFields(spec: StatusSpec, message: string): EditFields {
  return { ...spec.fields, message };
}

/** Reads the spec's source and renders the fields of the next update. Never throws. */
export async function renderStatus(
  spec: StatusSpec,
  options: RenderStatusOptions,
): Promise<RenderStatusResult> {
  const templateOptions = { now: options.now, timezone: spec.timezone };
  let data: unknown;
  try {
    data = await fetchSource(spec.source, {
      allowHttp: options.allowHttp,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (!(error instanceof SourceError) || error.code === 'SOURCE_ABORTED') {
      return { kind: 'failed', error: toAppError(error) };
    }
    if (spec.onSourceError === 'keep') return { kind: 'keep', error };
    try {
      const message = renderTemplate(
        spec.onSourceError.template,
        { error: { message: error.message, code: error.code } },
        templateOptions,
      );
      return { kind: 'render', fields: withStaticFields(spec, message), sourceError: error };
    } catch (renderError) {
      return { kind: 'failed', error: toAppError(renderError) };
    }
  }
  try {
    return {
      kind: 'render',
      fields: withStaticFields(spec, renderTemplate(spec.template, data, templateOptions)),
    };
  } catch (error) {
    return { kind: 'failed', error: toAppError(error) };
  }
}
