import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Failure, failure } from './outcome.ts';
import { parsePhpQuery } from './php-query.ts';

/** What a handler answers; `reset` destroys the socket instead of answering. */
export type HttpReply =
  | { kind: 'json'; status: number; body: unknown; code?: string }
  | { kind: 'html'; status: number; body: string }
  | { kind: 'redirect'; status: 307 | 308; location: string }
  | { kind: 'reset' };

const MAX_BODY_BYTES = 16 * 1024 * 1024;

export function json(status: number, body: unknown, code?: string): HttpReply {
  return code === undefined ? { kind: 'json', status, body } : { kind: 'json', status, body, code };
}

/**
 * Bitrix24's error answers are `{error, error_description}` with no `time` object (the docs' error
 * examples, and the SDKs read `time` only from successes); `_time` is accepted and left out.
 */
export function errorReply(f: Failure, _time?: unknown): HttpReply {
  return json(f.status, { error: f.code, error_description: f.description }, f.code);
}

export function replyStatus(reply: HttpReply): number {
  return reply.kind === 'reset' ? 0 : reply.status;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The credential-echo switch: every error description (of the call, and of each failed batch
 * command) quotes the given secrets, as a careless server or proxy might. For redaction tests.
 */
export function echoSecrets(reply: HttpReply, secrets: readonly string[]): HttpReply {
  if (reply.kind !== 'json' || !isRecord(reply.body) || secrets.length === 0) return reply;
  const quote = (entry: Record<string, unknown>) => ({
    ...entry,
    error_description: `${String(entry.error_description ?? '')} (credentials seen: ${secrets.join(', ')})`,
  });
  const body = reply.body;
  if (typeof body.error === 'string') return { ...reply, body: quote(body) };
  const result = body.result;
  if (!isRecord(result) || !isRecord(result.result_error)) return reply;
  const errors = Object.fromEntries(
    Object.entries(result.result_error).map(([key, entry]) => [key, isRecord(entry) ? quote(entry) : entry]),
  );
  return { ...reply, body: { ...body, result: { ...result, result_error: errors } } };
}

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new RangeError(`Request body above ${MAX_BODY_BYTES} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Query-string and body parameters merged, the body winning, as PHP's `$_REQUEST` would give them.
 * JSON bodies are recognised by content type or by their first character (curl users forget the header).
 */
export function parseParams(
  url: URL,
  body: string,
  contentType: string | undefined,
): { params: Record<string, unknown> } | { failure: Failure } {
  const query = parsePhpQuery(url.search.slice(1));
  const trimmed = body.trim();
  if (trimmed === '') return { params: query };
  if (contentType?.includes('json') || trimmed.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        return { failure: failure('INVALID_REQUEST') };
      }
      return { params: { ...query, ...(parsed as Record<string, unknown>) } };
    } catch {
      return { failure: failure('INVALID_REQUEST') };
    }
  }
  return { params: { ...query, ...parsePhpQuery(trimmed) } };
}

export function writeReply(res: ServerResponse, reply: HttpReply): void {
  if (reply.kind === 'reset') {
    res.socket?.destroy();
    return;
  }
  if (reply.kind === 'redirect') {
    res.writeHead(reply.status, { location: reply.location, 'content-length': 0 });
    res.end();
    return;
  }
  const text = reply.kind === 'json' ? JSON.stringify(reply.body) : reply.body;
  res.writeHead(reply.status, {
    'content-type': reply.kind === 'json' ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
