import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { MetricUnit, metrics } from '../../lib/observability/metrics.ts';
import { lambdaContext } from '../support/events.ts';

/** Everything written to stdout and stderr while `fn` runs (EMF goes to stdout, Powertools' warnings to stderr). */
async function written(fn: () => Promise<unknown>): Promise<string> {
  const chunks: string[] = [];
  const streams = [process.stdout, process.stderr];
  const writes = streams.map((stream) => stream.write);
  for (const stream of streams) {
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      chunks.push(String(chunk));
      const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    }) as typeof stream.write;
  }
  try {
    await fn();
  } finally {
    streams.forEach((stream, i) => {
      stream.write = writes[i] as typeof stream.write;
    });
  }
  return chunks.join('');
}

/** A handler wired like refresh-status: the project's metrics flushed by Powertools' middleware. */
function handlerRecording(count: number) {
  return middy<unknown, void, Error, Context>()
    .use(logMetrics(metrics))
    .handler(async () => {
      for (let i = 0; i < count; i += 1) metrics.addMetric('EditsApplied', MetricUnit.Count, 1);
    });
}

describe('the project metrics', () => {
  it('writes nothing, and no "No application metrics" warning, for an invocation that records no metric', async () => {
    const output = await written(() => handlerRecording(0)({}, lambdaContext()));
    expect(output).not.toContain('No application metrics');
    expect(output).toBe('');
  });

  it('still writes the EMF line of an invocation that records a metric', async () => {
    const output = await written(() => handlerRecording(2)({}, lambdaContext()));
    const emf = JSON.parse(output.trim()) as {
      _aws: { CloudWatchMetrics: { Metrics: { Name: string }[] }[] };
    };
    expect(emf._aws.CloudWatchMetrics[0]?.Metrics).toEqual([{ Name: 'EditsApplied', Unit: 'Count' }]);
    expect(emf).toMatchObject({ EditsApplied: [1, 1] });
    expect(output).not.toContain('No application metrics');
  });

  it('does not carry an empty invocation’s dimensions into the next one', async () => {
    await written(() =>
      middy<unknown, void, Error, Context>()
        .use(logMetrics(metrics))
        .handler(async () => {
          metrics.addDimension('portal', 'acme');
        })({}, lambdaContext()),
    );
    const output = await written(() => handlerRecording(1)({}, lambdaContext()));
    expect(output).not.toContain('acme');
  });
});
