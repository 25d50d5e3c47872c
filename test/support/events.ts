import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, Context } from 'aws-lambda';

const METHOD_PATH = '/rest/imbot.v2.Chat.Message.update';

/** An API Gateway HTTP API (payload 2.0) event, as Lambda receives it. */
export function httpApiEvent(
  body: unknown,
  options: { headers?: Record<string, string>; method?: string; path?: string; rawBody?: string } = {},
): APIGatewayProxyEventV2 {
  const path = options.path ?? METHOD_PATH;
  return {
    version: '2.0',
    routeKey: `POST ${METHOD_PATH}`,
    rawPath: path,
    rawQueryString: '',
    headers: { 'content-type': 'application/json', ...options.headers },
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: 'localhost',
      domainPrefix: 'localhost',
      http: {
        method: options.method ?? 'POST',
        path,
        protocol: 'HTTP/1.1',
        sourceIp: '127.0.0.1',
        userAgent: 'test',
      },
      requestId: 'req-1',
      routeKey: `POST ${METHOD_PATH}`,
      stage: '$default',
      time: '',
      timeEpoch: Date.now(),
    },
    body: options.rawBody ?? JSON.stringify(body),
    isBase64Encoded: false,
  };
}

/** An API Gateway REST API (payload 1.0) event. */
export function restApiEvent(body: unknown, headers: Record<string, string> = {}): APIGatewayProxyEvent {
  return {
    resource: METHOD_PATH,
    path: METHOD_PATH,
    httpMethod: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    multiValueHeaders: {},
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: null,
    stageVariables: null,
    requestContext: {
      requestId: 'req-2',
      httpMethod: 'POST',
      path: METHOD_PATH,
    } as APIGatewayProxyEvent['requestContext'],
    body: JSON.stringify(body),
    isBase64Encoded: false,
  };
}

/** A Lambda context whose deadline is `timeoutMs` from now. */
export function lambdaContext(timeoutMs = 15_000): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'test',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:test',
    memoryLimitInMB: '256',
    awsRequestId: `req-${Math.random().toString(36).slice(2)}`,
    logGroupName: 'test',
    logStreamName: 'test',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
