import type { B24Time } from '../../lib/bitrix24/types.ts';
import { type DemoPortal, seedDemoPortal } from '../../local/bitrix24-emulator/demo.ts';
import {
  type Bitrix24Emulator,
  type EmulatorOptions,
  startBitrix24Emulator,
} from '../../local/bitrix24-emulator/index.ts';

export interface Answer {
  status: number;
  contentType: string;
  text: string;
  body: {
    result?: unknown;
    error?: string;
    error_description?: string;
    time?: B24Time;
    [key: string]: unknown;
  };
}

/** A settable clock, so that bucket drain, baskets and token expiry can be tested without waiting. */
export function manualClock(startMs = Date.UTC(2026, 7, 21, 12, 0, 0)): {
  now: () => number;
  advance(ms: number): void;
} {
  let at = startMs;
  return {
    now: () => at,
    advance(ms: number) {
      at += ms;
    },
  };
}

export async function send(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000), ...init });
  const text = await response.text();
  const contentType = response.headers.get('content-type') ?? '';
  let body: Answer['body'] = {};
  if (contentType.includes('json')) body = JSON.parse(text) as Answer['body'];
  return { status: response.status, contentType, text, body };
}

export function postJson(url: string, body: unknown): Promise<Answer> {
  return send(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

export function postForm(url: string, form: string): Promise<Answer> {
  return send(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
  });
}

export interface DemoSetup {
  emu: Bitrix24Emulator;
  demo: DemoPortal;
  /** `${url}/rest/1/demo_webhook_code/${method}` */
  webhook(method: string): string;
  /** POSTs JSON to the demo webhook, adding the demo bot's botId and botToken. */
  asBot(method: string, params?: Record<string, unknown>): Promise<Answer>;
}

export async function startDemo(options: EmulatorOptions = {}): Promise<DemoSetup> {
  const emu = await startBitrix24Emulator(options);
  const demo = seedDemoPortal(emu);
  const webhook = (method: string) => `${emu.url}/rest/${demo.webhook.userId}/${demo.webhook.code}/${method}`;
  return {
    emu,
    demo,
    webhook,
    asBot: (method, params = {}) =>
      postJson(webhook(method), { botId: demo.botId, botToken: demo.botToken, ...params }),
  };
}

export const UPDATE = 'imbot.v2.Chat.Message.update';
