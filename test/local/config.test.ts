import { describe, expect, it } from 'vitest';
import { DEFAULT_STATUS_SPECS_FILE, loadLocalConfig } from '../../local/stack/config.ts';

const REAL = {
  B24_PORTAL_URL: 'https://acme.bitrix24.com/some/path',
  B24_WEBHOOK_USER_ID: '7',
  B24_WEBHOOK_CODE: 'whk_s3cr3t',
  B24_BOT_ID: '12',
  B24_BOT_TOKEN: 'bot_s3cr3t',
};

describe('local stack configuration', () => {
  it('uses the documented ports, the demo portal and the local status file by default', () => {
    const config = loadLocalConfig({});
    expect([config.api.port, config.sandbox.port, config.emulator.port, config.sqs.port]).toEqual([
      3000, 8024, 8025, 8026,
    ]);
    expect(config.apiTls).toEqual({ port: 3443, variable: 'API_TLS_PORT', what: 'the API over HTTPS' });
    expect(config.secretsManager.port).toBe(8027);
    expect(config.dynamodb).toEqual({ port: 8028, variable: 'DYNAMODB_PORT', what: 'the local DynamoDB' });
    expect(config.sweepIntervalMs).toBe(10_000);
    expect(config.portal).toBe('demo');
    expect(config.realPortal).toBeUndefined();
    expect(config.statusSpecsFile).toBe(DEFAULT_STATUS_SPECS_FILE);
    expect(config.handlerLogLevel).toBe('WARN');
  });

  it('takes ports from their variables, 0 meaning any free port', () => {
    const config = loadLocalConfig({ API_PORT: '3100', SANDBOX_PORT: '0' });
    expect(config.api).toEqual({ port: 3100, variable: 'API_PORT', what: 'the update API' });
    expect(config.sandbox.port).toBe(0);
  });

  it.each(['abc', '-1', '70000', '3.5'])('refuses API_PORT=%s naming the variable', (value) => {
    expect(() => loadLocalConfig({ API_PORT: value })).toThrow(
      `Expected API_PORT to be a port number from 0 to 65535 (0 picks a free one), got "${value}"`,
    );
  });

  it('takes the HTTPS port from API_TLS_PORT and refuses one that is not a port, naming it', () => {
    expect(loadLocalConfig({ API_TLS_PORT: '0' }).apiTls.port).toBe(0);
    expect(() => loadLocalConfig({ API_TLS_PORT: 'https' })).toThrow(
      'Expected API_TLS_PORT to be a port number from 0 to 65535 (0 picks a free one), got "https"',
    );
  });

  it('runs the sweep every SWEEP_INTERVAL_SECONDS, refusing anything but 1 to 3600 seconds', () => {
    expect(loadLocalConfig({ SWEEP_INTERVAL_SECONDS: '2' }).sweepIntervalMs).toBe(2_000);
    expect(() => loadLocalConfig({ SWEEP_INTERVAL_SECONDS: '0' })).toThrow(
      'Expected SWEEP_INTERVAL_SECONDS to be a positive integer, got "0"',
    );
    expect(() => loadLocalConfig({ SWEEP_INTERVAL_SECONDS: '3601' })).toThrow(
      'Expected SWEEP_INTERVAL_SECONDS to be a positive integer up to 3600, got "3601"',
    );
  });

  it('uses a real portal when B24_PORTAL_URL is set, keyed by its first host label, with specs off', () => {
    const config = loadLocalConfig(REAL);
    expect(config.realPortal).toEqual({
      url: 'https://acme.bitrix24.com',
      webhookUserId: 7,
      webhookCode: 'whk_s3cr3t',
      botId: 12,
      botToken: 'bot_s3cr3t',
      plan: 'standard',
    });
    expect(config.portal).toBe('acme');
    expect(config.statusSpecsFile).toBeUndefined();
  });

  it('keys a portal reached by IP address as demo', () => {
    expect(loadLocalConfig({ ...REAL, B24_PORTAL_URL: 'http://127.0.0.1:9000' }).portal).toBe('demo');
  });

  it.each(['B24_WEBHOOK_CODE', 'B24_BOT_TOKEN'])(
    'requires %s with a real portal, without echoing values',
    (name) => {
      const env: Record<string, string | undefined> = { ...REAL, [name]: undefined };
      expect(() => loadLocalConfig(env)).toThrow(`${name} is required when B24_PORTAL_URL is set`);
    },
  );

  it('refuses a webhook user id that is not a positive integer', () => {
    expect(() => loadLocalConfig({ ...REAL, B24_WEBHOOK_USER_ID: 'one' })).toThrow(
      'Expected B24_WEBHOOK_USER_ID to be a positive integer, got "one"',
    );
  });

  it('refuses an unknown plan', () => {
    expect(() => loadLocalConfig({ ...REAL, B24_PLAN: 'gold' })).toThrow(
      'Expected B24_PLAN to be standard or enterprise, got "gold"',
    );
  });

  it('turns the status schedules off with STATUS_SPECS_FILE=off and reads another file when named', () => {
    expect(loadLocalConfig({ STATUS_SPECS_FILE: 'off' }).statusSpecsFile).toBeUndefined();
    expect(loadLocalConfig({ ...REAL, STATUS_SPECS_FILE: 'mine.yml' }).statusSpecsFile).toBe('mine.yml');
  });
});
