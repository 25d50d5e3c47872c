import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './listen.ts';

/**
 * A loopback Secrets Manager for tests and the local stack. It speaks the JSON 1.1 protocol the
 * AWS SDK uses (`X-Amz-Target: secretsmanager.<Operation>`) for GetSecretValue, PutSecretValue,
 * CreateSecret, DescribeSecret, ListSecrets and DeleteSecret. Signatures are not checked.
 */
export interface LocalSecretsManager {
  /** `http://127.0.0.1:<port>`: give it to the client as `endpoint`. */
  readonly url: string;
  close(): Promise<void>;
  /** Creates the secret, or stores `value` as its new current version. */
  setSecret(name: string, value: string): void;
  /** The current string value; undefined when the secret does not exist or is deleted. */
  getSecret(name: string): string | undefined;
  /** GetSecretValue requests received for a secret (by name or ARN), failed ones included. */
  readonly getCount: (name: string) => number;
  /** Answer the next `n` requests, whatever their operation, with an error. Default: 500 InternalServiceError. */
  failNext(n: number, error?: { type: string; status: number }): void;
  /** Hold the answer to the next `n` requests for `ms` milliseconds (to order racing requests in tests). */
  delayNext(n: number, ms: number): void;
}

export interface LocalSecretsManagerOptions {
  /** Default 0 (any free port). */
  port?: number;
  /** Secrets to create at start, name to SecretString. */
  secrets?: Record<string, string>;
}

const ACCOUNT = '000000000000';
const REGION = 'us-east-1';
const MAX_BODY_BYTES = 1024 * 1024;

interface Version {
  id: string;
  string?: string;
  binary?: string;
  stages: Set<string>;
  created: number;
}

interface Secret {
  name: string;
  arn: string;
  description?: string;
  created: number;
  changed: number;
  deleted?: number;
  versions: Map<string, Version>;
}

class ServiceError extends Error {
  readonly type: string;
  readonly status: number;

  constructor(type: string, message: string, status = 400) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

type Body = Record<string, unknown>;

const seconds = (ms: number): number => ms / 1000;

function optionalString(body: Body, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string')
    throw new ServiceError('InvalidParameterException', `${key} must be a string`);
  return value;
}

function requiredString(body: Body, key: string): string {
  const value = optionalString(body, key);
  if (!value) throw new ServiceError('InvalidParameterException', `${key} is required`);
  return value;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES)
        reject(new ServiceError('InvalidRequestException', 'Request body is too large'));
      else resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

export async function startSecretsManager(
  options: LocalSecretsManagerOptions = {},
): Promise<LocalSecretsManager> {
  const secrets = new Map<string, Secret>();
  const getCounts = new Map<string, number>();
  const failures: { type: string; status: number }[] = [];
  const delays: number[] = [];

  // Accepts a name, a full ARN, or an ARN without the random suffix.
  function nameOf(secretId: string): string {
    const marker = secretId.startsWith('arn:') ? secretId.indexOf(':secret:') : -1;
    if (marker < 0) return secretId;
    const tail = secretId.slice(marker + ':secret:'.length);
    for (const secret of secrets.values()) {
      if (secret.arn === secretId || secret.name === tail) return secret.name;
    }
    return tail;
  }

  function find(secretId: string, options: { allowDeleted?: boolean } = {}): Secret {
    const secret = secrets.get(nameOf(secretId));
    if (!secret)
      throw new ServiceError('ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    if (secret.deleted !== undefined && !options.allowDeleted) {
      throw new ServiceError(
        'InvalidRequestException',
        "You can't perform this operation on the secret because it was marked for deletion.",
      );
    }
    return secret;
  }

  function current(secret: Secret): Version | undefined {
    for (const version of secret.versions.values()) if (version.stages.has('AWSCURRENT')) return version;
    return undefined;
  }

  function addVersion(
    secret: Secret,
    value: { string?: string; binary?: string },
    id: string = randomUUID(),
  ): Version {
    const existing = secret.versions.get(id);
    if (existing) {
      if (existing.string === value.string && existing.binary === value.binary) return existing;
      throw new ServiceError(
        'ResourceExistsException',
        'A version with this ClientRequestToken already exists.',
      );
    }
    for (const version of secret.versions.values()) version.stages.delete('AWSPREVIOUS');
    const previous = current(secret);
    if (previous) {
      previous.stages.delete('AWSCURRENT');
      previous.stages.add('AWSPREVIOUS');
    }
    for (const [key, version] of secret.versions) if (version.stages.size === 0) secret.versions.delete(key);
    const version: Version = { id, ...value, stages: new Set(['AWSCURRENT']), created: Date.now() };
    secret.versions.set(id, version);
    secret.changed = version.created;
    return version;
  }

  function create(name: string, description?: string): Secret {
    const suffix = randomBytes(4).toString('base64url').slice(0, 6);
    const now = Date.now();
    const secret: Secret = {
      name,
      arn: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${name}-${suffix}`,
      created: now,
      changed: now,
      versions: new Map(),
      ...(description === undefined ? {} : { description }),
    };
    secrets.set(name, secret);
    return secret;
  }

  function secretValue(body: Body): { string?: string; binary?: string } {
    const string = optionalString(body, 'SecretString');
    const binary = optionalString(body, 'SecretBinary');
    if (string !== undefined && binary !== undefined) {
      throw new ServiceError('InvalidParameterException', 'Specify SecretString or SecretBinary, not both.');
    }
    if (string !== undefined) return { string };
    if (binary !== undefined) return { binary };
    return {};
  }

  function describe(secret: Secret): Body {
    const stages: Record<string, string[]> = {};
    for (const version of secret.versions.values()) stages[version.id] = [...version.stages];
    return {
      ARN: secret.arn,
      Name: secret.name,
      ...(secret.description === undefined ? {} : { Description: secret.description }),
      CreatedDate: seconds(secret.created),
      LastChangedDate: seconds(secret.changed),
      ...(secret.deleted === undefined ? {} : { DeletedDate: seconds(secret.deleted) }),
      VersionIdsToStages: stages,
    };
  }

  const operations: Record<string, (body: Body) => Body> = {
    CreateSecret(body) {
      const name = requiredString(body, 'Name');
      const existing = secrets.get(name);
      if (existing?.deleted !== undefined) {
        throw new ServiceError(
          'InvalidRequestException',
          "You can't create this secret because a secret with this name is already scheduled for deletion.",
        );
      }
      if (existing) throw new ServiceError('ResourceExistsException', `The secret ${name} already exists.`);
      const secret = create(name, optionalString(body, 'Description'));
      const value = secretValue(body);
      if (value.string === undefined && value.binary === undefined) return { ARN: secret.arn, Name: name };
      const version = addVersion(secret, value, optionalString(body, 'ClientRequestToken'));
      return { ARN: secret.arn, Name: name, VersionId: version.id };
    },

    GetSecretValue(body) {
      const secretId = requiredString(body, 'SecretId');
      const name = nameOf(secretId);
      getCounts.set(name, (getCounts.get(name) ?? 0) + 1);
      const secret = find(secretId);
      const versionId = optionalString(body, 'VersionId');
      const stage = optionalString(body, 'VersionStage') ?? (versionId ? undefined : 'AWSCURRENT');
      const version = [...secret.versions.values()].find(
        (candidate) =>
          (versionId === undefined || candidate.id === versionId) &&
          (stage === undefined || candidate.stages.has(stage)),
      );
      if (!version) {
        throw new ServiceError(
          'ResourceNotFoundException',
          "Secrets Manager can't find the specified secret value for the requested version or staging label.",
        );
      }
      return {
        ARN: secret.arn,
        Name: secret.name,
        VersionId: version.id,
        VersionStages: [...version.stages],
        CreatedDate: seconds(version.created),
        ...(version.string === undefined ? {} : { SecretString: version.string }),
        ...(version.binary === undefined ? {} : { SecretBinary: version.binary }),
      };
    },

    PutSecretValue(body) {
      const secret = find(requiredString(body, 'SecretId'));
      const value = secretValue(body);
      if (value.string === undefined && value.binary === undefined) {
        throw new ServiceError(
          'InvalidRequestException',
          'You must provide either SecretString or SecretBinary.',
        );
      }
      const version = addVersion(secret, value, optionalString(body, 'ClientRequestToken'));
      return {
        ARN: secret.arn,
        Name: secret.name,
        VersionId: version.id,
        VersionStages: [...version.stages],
      };
    },

    DescribeSecret(body) {
      return describe(find(requiredString(body, 'SecretId'), { allowDeleted: true }));
    },

    ListSecrets(body) {
      const filters = Array.isArray(body.Filters)
        ? (body.Filters as { Key?: string; Values?: string[] }[])
        : [];
      const namePrefixes = filters.filter((f) => f.Key === 'name').flatMap((f) => f.Values ?? []);
      const includeDeleted = body.IncludePlannedDeletion === true;
      const all = [...secrets.values()]
        .filter((secret) => includeDeleted || secret.deleted === undefined)
        .filter((secret) => namePrefixes.length === 0 || namePrefixes.some((p) => secret.name.startsWith(p)))
        .sort((a, b) => a.name.localeCompare(b.name));
      const max = typeof body.MaxResults === 'number' ? body.MaxResults : 100;
      const start = Number(optionalString(body, 'NextToken') ?? 0) || 0;
      const page = all.slice(start, start + max);
      const next = start + max < all.length ? { NextToken: String(start + max) } : {};
      return { SecretList: page.map(describe), ...next };
    },

    DeleteSecret(body) {
      const secret = find(requiredString(body, 'SecretId'));
      const now = Date.now();
      if (body.ForceDeleteWithoutRecovery === true) {
        secrets.delete(secret.name);
        return { ARN: secret.arn, Name: secret.name, DeletionDate: seconds(now) };
      }
      const days = typeof body.RecoveryWindowInDays === 'number' ? body.RecoveryWindowInDays : 30;
      secret.deleted = now;
      return { ARN: secret.arn, Name: secret.name, DeletionDate: seconds(now + days * 86_400_000) };
    },
  };

  function send(res: ServerResponse, status: number, body: Body): void {
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() });
    res.end(JSON.stringify(body));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const delay = delays.shift();
    let answer: { status: number; body: Body };
    try {
      const raw = await readBody(req);
      const target = String(req.headers['x-amz-target'] ?? '');
      const operation = target.startsWith('secretsmanager.') ? target.slice('secretsmanager.'.length) : '';
      const run = Object.hasOwn(operations, operation) ? operations[operation] : undefined;
      if (req.method !== 'POST' || !run) {
        throw new ServiceError('UnknownOperationException', `Unknown operation ${JSON.stringify(target)}`);
      }
      let body: Body;
      try {
        const parsed: unknown = raw ? JSON.parse(raw) : {};
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
          throw new Error('not an object');
        body = parsed as Body;
      } catch {
        throw new ServiceError('SerializationException', 'The request body is not a JSON object');
      }
      const failure = failures.shift();
      if (failure) {
        // Counted like any other attempt, so that tests can see a failed fetch was made.
        if (operation === 'GetSecretValue' && typeof body.SecretId === 'string') {
          const name = nameOf(body.SecretId);
          getCounts.set(name, (getCounts.get(name) ?? 0) + 1);
        }
        throw new ServiceError(failure.type, `Injected ${failure.type}`, failure.status);
      }
      answer = { status: 200, body: run(body) };
    } catch (error) {
      answer =
        error instanceof ServiceError
          ? { status: error.status, body: { __type: error.type, message: error.message } }
          : {
              status: 500,
              body: { __type: 'InternalServiceError', message: 'The local Secrets Manager failed' },
            };
    }
    // The answer is computed first and held afterwards: a delayed read returns the value as it was.
    if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
    send(res, answer.status, answer.body);
  }

  for (const [name, value] of Object.entries(options.secrets ?? {}))
    addVersion(create(name), { string: value });

  const server = createServer((req, res) => void handle(req, res));
  const port = await listenOnLoopback(server, options.port ?? 0);

  return {
    url: `http://127.0.0.1:${port}`,
    close() {
      return new Promise((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // The SDK keeps connections alive; without this, close waits for them to time out.
        server.closeAllConnections();
      });
    },
    setSecret(name, value) {
      const existing = secrets.get(name);
      const secret = existing && existing.deleted === undefined ? existing : create(name);
      addVersion(secret, { string: value });
    },
    getSecret(name) {
      const secret = secrets.get(name);
      return secret?.deleted === undefined && secret ? current(secret)?.string : undefined;
    },
    getCount: (name) => getCounts.get(nameOf(name)) ?? 0,
    failNext(n, error = { type: 'InternalServiceError', status: 500 }) {
      failures.length = 0;
      for (let i = 0; i < n; i += 1) failures.push(error);
    },
    delayNext(n, ms) {
      delays.length = 0;
      for (let i = 0; i < n; i += 1) delays.push(ms);
    },
  };
}
