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

  /** A cell of the edits table: the edits of one path (api, queue, status) with one outcome. */
  async function count(path: string, outcome: string): Promise<number> {
    return Number(await page.textContent(`[data-testid="edits-${path}-${outcome}"]`));
  }

  async function apiEdit(messageId: number, text: string, async = false): Promise<number> {
    const response = await fetch(`http://127.0.0.1:${ports.API_PORT}/rest/imbot.v2.Chat.Message.update`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(async ? { prefer: 'respond-async' } : {}) },
      body: JSON.stringify({ botId: 456, messageId, fields: { message: text } }),
    });
    return response.status;
  }

  /** Resolves once the element's HTML has changed: the live stream redrew it. */
  async function redrawn(selector: string): Promise<void> {
    const before = await page.innerHTML(selector);
    await expect
      .poll(() => page.innerHTML(selector), { timeout: 3 * LIVE_MS, interval: 50 })
      .not.toBe(before);
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

  it("counts the README curl's edit as recorded and applied on the API's row of the edits table", async () => {
    await expect.poll(() => count('api', 'applied'), { timeout: LIVE_MS, interval: 50 }).toBe(1);
    expect(await count('api', 'recorded')).toBe(1);
    expect(await count('api', 'deferred')).toBe(0);
    expect(await count('queue', 'recorded')).toBe(0);
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
    'keeps every time, status, message id and duration of the requests table on one line at $width px',
    async (size) => {
      await page.setViewportSize(size);
      await expect
        .poll(async () => (await page.textContent('#requests .description')) ?? '', { timeout: LIVE_MS })
        .not.toBe('');
      // A string, run in the page: the type check has no DOM library. Each cell's text, as laid out
      // in lines: one rectangle per line.
      const cells = (await page.evaluate(`(() => {
        const lines = (cell) => {
          const range = document.createRange();
          range.selectNodeContents(cell);
          return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
        };
        return [...document.querySelectorAll('#requests tbody tr')].map((row) => {
          const [time, status, , message, took] = [...row.children];
          return [time, status, message, took].map((cell) => cell.textContent + ' ' + lines(cell));
        });
      })()`)) as string[][];
      expect(cells.length).toBeGreaterThan(0);
      for (const row of cells) for (const cell of row) expect(cell).toMatch(/ [01]$/);
    },
  );

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

  it('marks message 791 as a status message that its schedule re-renders, in the chat and in the form', async () => {
    const note = (await page.textContent('#message-791 [data-testid="status-message-791"]')) ?? '';
    expect(note.replace(/\s+/g, ' ')).toBe(
      'status message re-rendered by the schedule “deploy status” every 10 seconds: an edit sent here lasts until its next run',
    );
    expect(await page.textContent('#message-789')).not.toMatch(/status message/i);
    expect(await page.textContent('select[name="messageId"] option[value="791"]')).toMatch(/status message/i);
  });

  it('shows the answer of the button that moves failed edits back, after the panel it was in is redrawn', async () => {
    await page.setViewportSize({ width: 1280, height: 800 });
    // A person's message: the reconcile's call is refused for good, and the edit goes to the failed-edits queue.
    expect(await apiEdit(800, 'Not the bot’s to edit', true)).toBe(202);
    const button = page.getByRole('button', { name: 'Move failed edits back to the queue' });
    await button.waitFor({ timeout: 3 * LIVE_MS });
    await button.click();
    const answer = page.getByText('Moved 1 failed edit(s) back to the queue; 0 kept.');
    await answer.waitFor({ timeout: LIVE_MS });
    await redrawn('#queue');
    expect(await answer.isVisible()).toBe(true);
    expect(await page.textContent('#queue')).toContain('on the failed-edits queue');
    // Replayed, it is a new edit of the edits queue, refused again by Bitrix24.
    await expect.poll(() => count('queue', 'failed'), { timeout: 3 * LIVE_MS, interval: 100 }).toBe(1);
    expect(await count('api', 'failed')).toBe(1);
    expect(await page.evaluate(MARKED)).toBe(true);
  }, 40_000);

  it('counts 18 of 20 edits of two messages as superseded and 2 as applied when they land after a pause, with every button answering', async () => {
    await expect.poll(() => count('api', 'deferred'), { timeout: 3 * LIVE_MS, interval: 100 }).toBe(0);
    const before = { applied: await count('api', 'applied'), superseded: await count('api', 'superseded') };

    await page.getByRole('button', { name: 'Pause the drain' }).click();
    await page
      .getByText(/^Drain paused: deferred edits \(202\) wait in the ledger/)
      .waitFor({ timeout: 3 * LIVE_MS });
    // An error answer: the schedules wait too.
    await page.getByRole('button', { name: 'Run the schedules now' }).click();
    const refused = page.getByText('Drain paused: the status schedules wait for Resume.');
    await refused.waitFor({ timeout: LIVE_MS });
    expect(await refused.getAttribute('class')).toContain('bad');

    for (let i = 1; i <= 10; i++) {
      for (const id of [789, 790]) expect(await apiEdit(id, `Coalesced ${id} #${i}`, true)).toBe(202);
    }
    await expect.poll(() => count('api', 'deferred'), { timeout: LIVE_MS, interval: 50 }).toBe(20);

    await page.getByRole('button', { name: 'Resume' }).click();
    const resumed = page.getByText(/^Resumed: 20 edits → \d+ Bitrix24 calls? in /);
    await resumed.waitFor({ timeout: 6 * LIVE_MS });
    await waitForText(789, 'Coalesced 789 #10');
    await waitForText(790, 'Coalesced 790 #10');
    await expect.poll(() => count('api', 'deferred'), { timeout: LIVE_MS, interval: 50 }).toBe(0);
    expect((await count('api', 'superseded')) - before.superseded).toBe(18);
    expect((await count('api', 'applied')) - before.applied).toBe(2);
    expect(await resumed.isVisible()).toBe(true);
    expect(await page.evaluate(MARKED)).toBe(true);
  }, 60_000);

  it("keeps the handlers' INFO log lines off the console, as its banner says", async () => {
    expect(stack.output()).toMatch(/^Handler logs: WARN and above/m);
    // Every edit above logged at INFO ("Edit applied", "Edit deferred", ...) unless WARN took effect.
    expect(stack.output()).toMatch(/POST \/rest\/imbot\.v2\.Chat\.Message\.update → 202 deferred/);
    expect(stack.output()).not.toMatch(/"level":"INFO"/);
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
