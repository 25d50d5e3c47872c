import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts, npmStart, readmeCurl, type StartedProcess } from './support/npm-start.ts';

// Debian's chromium (`apt-get install chromium`; .ci/run installs it). playwright's own browser
// download does not work on this machine kind.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const missing = !existsSync(CHROMIUM);
const title = missing
  ? `sandbox page in headless Chromium (skipped: no browser at ${CHROMIUM}; apt-get install chromium, or set CHROMIUM_PATH)`
  : 'sandbox page in headless Chromium';
// Without the background-networking flags Chromium keeps dialling Google's hosts, which this
// network refuses; playwright gives every launch a fresh temporary profile.
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const LIVE_MS = 5_000;
// Set in the page once loaded; lost on any reload, so every change checked below arrived live.
const MARK = 'window.notReloaded = true';
const MARKED = 'window.notReloaded === true';

if (missing) console.warn(title);

describe.skipIf(missing)(title, () => {
  let stack: StartedProcess;
  let browser: Browser;
  let page: Page;
  let ports: Record<string, string>;

  beforeAll(async () => {
    ports = await freePorts();
    stack = npmStart(ports);
    await stack.waitFor(/^Ready in \d+ ms/m, 20_000);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
    page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${ports.SANDBOX_PORT}/`);
    await page.waitForSelector('body[data-live="on"]', { timeout: LIVE_MS });
    await page.evaluate(MARK);
  }, 40_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.kill();
  });

  async function messageText(id: number): Promise<string> {
    return (await page.textContent(`[data-testid="message-text-${id}"]`)) ?? '';
  }

  async function waitForText(id: number, expected: string): Promise<void> {
    await expect.poll(() => messageText(id), { timeout: LIVE_MS, interval: 50 }).toContain(expected);
  }

  it("shows message 789 change and its ledger line turn applied, without a reload, when the README's curl is sent", async () => {
    expect(await messageText(789)).toBe('Build #41: running…');
    const response = await readmeCurl(`http://127.0.0.1:${ports.API_PORT}/rest/imbot.v2.Chat.Message.update`);
    expect(response.status).toBe(200);
    await waitForText(789, 'Updated text');
    await expect
      .poll(async () => (await page.textContent('[data-testid="ledger-789"]')) ?? '', {
        timeout: LIVE_MS,
        interval: 50,
      })
      .toMatch(/desired “Updated text” · applied · version 1, applied 1/);
    expect(await page.evaluate(MARKED)).toBe(true);
  });

  it("shows an edit deferred through the queue from the page's own form", async () => {
    await page.selectOption('select[name="messageId"]', '790');
    await page.fill('input[name="text"]', 'Build #40: passed, through the queue');
    await page.check('input[name="async"]');
    await page.click('form.edit button[type="submit"]');
    await waitForText(790, 'Build #40: passed, through the queue');
    await expect
      .poll(async () => (await page.textContent('#requests')) ?? '', { timeout: LIVE_MS, interval: 50 })
      .toContain('deferred (requested)');
    expect(await page.textContent('[data-testid="queue-failed"]')).toBe('0');
    expect(await page.evaluate(MARKED)).toBe(true);
  });

  it("shows the portal's next wake-up and lease in their own labelled panel, with the portal work queue's depth", async () => {
    expect(await page.textContent('h2:has(+ #wakeups)')).toBe('Portal wake-ups');
    // Applied above and nothing left: no wake-up scheduled (a status run may schedule one meanwhile).
    await expect
      .poll(async () => (await page.textContent('[data-testid="wakeup-demo"]')) ?? '', {
        timeout: LIVE_MS,
        interval: 50,
      })
      .toMatch(/^\s*Portal demo: next wake-up (none|\d\d:\d\d:\d\d) .*· (no lease held|lease held until)/s);
    expect(await page.textContent('[data-testid="wakeups-delayed"]')).toMatch(/^\d+$/);
    expect(await page.evaluate(MARKED)).toBe(true);
  });

  it("shows the API's answer to the page's form beside it: status, outcome and editId", async () => {
    await page.selectOption('select[name="messageId"]', '789');
    await page.fill('input[name="text"]', 'Build #41: passed, from the form');
    await page.check('input[name="async"]');
    await page.click('form.edit button[type="submit"]');
    await expect
      .poll(async () => (await page.textContent('form.edit output.answer')) ?? '', {
        timeout: LIVE_MS,
        interval: 50,
      })
      .toMatch(/^HTTP 202 deferred \(requested\) · editId [0-9a-f-]{36}$/);
    await page.uncheck('input[name="async"]');
  });

  it('lists a refused request with its error description', async () => {
    const response = await fetch(`http://127.0.0.1:${ports.API_PORT}/rest/imbot.v2.Chat.Message.update`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ botId: 456, messageId: 789, fields: { message: 42 } }),
    });
    expect(response.status).toBe(400);
    const { error_description: description } = (await response.json()) as { error_description: string };
    await expect
      .poll(async () => (await page.textContent('#requests .description')) ?? '', {
        timeout: LIVE_MS,
        interval: 50,
      })
      .toBe(description);
  });

  it.each([
    { width: 420, height: 860 },
    { width: 1280, height: 800 },
  ])(
    'wraps a long unbroken text inside its bubble at $width px, with no sideways scrolling',
    async (size) => {
      const long = `https://example.com/${'a1b2c3d4'.repeat(40)}`;
      const response = await fetch(`http://127.0.0.1:${ports.API_PORT}/rest/imbot.v2.Chat.Message.update`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ botId: 456, messageId: 790, fields: { message: long } }),
      });
      // Applied now, or (790 was edited a moment ago: the message cadence) deferred and drained.
      expect([200, 202]).toContain(response.status);
      await page.setViewportSize(size);
      await waitForText(790, long);
      // A string, run in the page: the type check has no DOM library.
      const layout = (await page.evaluate(`(() => {
        const bubble = document.getElementById('message-790');
        return {
          pageWidth: document.documentElement.scrollWidth,
          viewport: document.documentElement.clientWidth,
          bubbleOverflow: bubble.scrollWidth - bubble.clientWidth,
          bubbleRight: bubble.getBoundingClientRect().right,
        };
      })()`)) as { pageWidth: number; viewport: number; bubbleOverflow: number; bubbleRight: number };
      expect(layout.pageWidth).toBeLessThanOrEqual(layout.viewport);
      expect(layout.bubbleOverflow).toBeLessThanOrEqual(0);
      expect(layout.bubbleRight).toBeLessThanOrEqual(layout.viewport);
    },
  );

  it('draws the keyboard and the attach a caller sends, as buttons and blocks', async () => {
    const response = await fetch(`http://127.0.0.1:${ports.API_PORT}/rest/imbot.v2.Chat.Message.update`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        botId: 456,
        messageId: 789,
        fields: {
          message: 'Build #41: failed',
          keyboard: [
            { TEXT: 'Open build', LINK: 'https://ci.example.com/41' },
            { TEXT: 'Retry', COMMAND: 'retry' },
          ],
          attach: [
            { MESSAGE: 'Branch [B]main[/B]' },
            { GRID: [{ NAME: 'Tests', VALUE: '9/12', DISPLAY: 'LINE' }] },
          ],
        },
      }),
    });
    expect([200, 202]).toContain(response.status);
    await expect
      .poll(() => page.locator('[data-testid="keyboard-789"] button').allTextContents(), {
        timeout: LIVE_MS,
        interval: 50,
      })
      .toEqual(['Open build', 'Retry']);
    expect(await page.textContent('[data-testid="attach-789"]')).toMatch(/Branch main\s*Tests\s*9\/12/);
    expect(await page.evaluate(MARKED)).toBe(true);
  });

  it('shows the scheduled status message turn red when the demo build breaks', async () => {
    await waitForText(791, '✅ green');
    await page.click('text=Break the build');
    await waitForText(791, '❌ red · 9/12 checks');
    expect(await page.evaluate(MARKED)).toBe(true);
  });

  it('says it is disconnected when the stack stops, and comes back live by itself when it starts again', async () => {
    await stack.kill();
    await page.waitForSelector('body[data-live="off"]', { timeout: LIVE_MS });
    expect(await page.isVisible('.offline')).toBe(true);
    expect(await page.textContent('[data-testid="connection"]')).toContain('disconnected');
    expect(await page.isVisible('text=disconnected from the local stack')).toBe(true);
    stack = npmStart(ports);
    await stack.waitFor(/^Ready in \d+ ms/m, 20_000);
    await page.waitForSelector('body[data-live="on"]', { timeout: 10_000 });
    expect(await page.isVisible('.offline')).toBe(false);
    // The new stack's state arrived live: the demo message is back to its seed text.
    await waitForText(789, 'Build #41: running…');
    expect(await page.evaluate(MARKED)).toBe(true);
  }, 40_000);
});
