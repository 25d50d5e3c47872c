import { Logger } from '@aws-lambda-powertools/logger';
import { describe, expect, it } from 'vitest';
import {
  MASK,
  redact,
  redactingReplacer,
  redactString,
  registerCredentialPair,
  registerSecret,
} from '../../lib/observability/redact.ts';

function captureLog(fn: (logger: Logger) => void): string {
  const lines: string[] = [];
  const streams = [process.stdout, process.stderr];
  const writes = streams.map((stream) => stream.write);
  for (const stream of streams) {
    stream.write = ((chunk: unknown) => {
      lines.push(String(chunk));
      return true;
    }) as typeof stream.write;
  }
  try {
    fn(new Logger({ serviceName: 'redaction-test', jsonReplacerFn: redactingReplacer }));
  } finally {
    streams.forEach((stream, i) => {
      stream.write = writes[i] as typeof stream.write;
    });
  }
  return lines.join('');
}

describe('redaction', () => {
  it('masks secret-bearing keys at any depth', () => {
    const out = redact({
      botToken: 'a_s3cr3t_1',
      nested: {
        auth: { accessToken: 'b_s3cr3t_2' },
        refresh_token: 'c_s3cr3t_3',
        clientSecret: 'd_s3cr3t_4',
      },
      code: 'ACCESS_DENIED',
    });
    expect(out).toEqual({
      botToken: MASK,
      nested: { auth: MASK, refresh_token: MASK, clientSecret: MASK },
      code: 'ACCESS_DENIED',
    });
  });

  it('masks a registered secret wherever it appears inside a string', () => {
    registerSecret('e_s3cr3t_5');
    expect(redactString('upstream said: token e_s3cr3t_5 is bad')).toBe(
      `upstream said: token ${MASK} is bad`,
    );
  });

  it('masks a registered secret quoted percent-encoded, in base64 or base64url, or in another case', () => {
    const secret = 'k/s3cr3t+10=ab';
    registerSecret(secret);
    const forms = [
      encodeURIComponent(secret),
      Buffer.from(secret).toString('base64'),
      Buffer.from(secret).toString('base64url'),
      secret.toUpperCase(),
    ];
    for (const form of forms) {
      const out = redactString(`upstream said: ${form} is bad`);
      expect(out).toContain(MASK);
      expect(out.toLowerCase()).not.toContain('s3cr3t');
      expect(out).not.toContain(form.replace(/=+$/, ''));
    }
  });

  it('masks a webhook user and code quoted together in base64, as a Basic authorization carries them', () => {
    registerCredentialPair(7, 'l_s3cr3t_11');
    const basic = Buffer.from('7:l_s3cr3t_11').toString('base64');
    expect(redactString(`Authorization: Basic ${basic}`)).toBe(`Authorization: Basic ${MASK}`);
  });

  it('masks the secret segment of a webhook path', () => {
    expect(
      redactString('POST https://acme.bitrix24.com/rest/1/f_s3cr3t_6/imbot.v2.Chat.Message.update'),
    ).toBe(`POST https://acme.bitrix24.com/rest/1/${MASK}/imbot.v2.Chat.Message.update`);
  });

  it('keeps secrets out of structured log lines, including error messages', () => {
    registerSecret('g_s3cr3t_7');
    const output = captureLog((logger) => {
      logger.info('calling', { botToken: 'h_s3cr3t_8', url: 'https://x/rest/3/i_s3cr3t_9/batch' });
      logger.error('failed', { error: new Error('token g_s3cr3t_7 rejected') });
    });
    expect(output).toContain('calling');
    expect(output).toContain('failed');
    expect(output).not.toMatch(/s3cr3t/);
  });
});
