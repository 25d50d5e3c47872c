import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { serviceNameOf } from './service.ts';

/**
 * Powertools' Metrics, flushing only when the invocation recorded something. Its own flush warns
 * "No application metrics to publish…" on every empty one, and it has no option to silence only
 * that (`throwOnEmptyMetrics` throws instead): handlers that record nothing printed the warning on
 * every invocation.
 */
export class QuietMetrics extends Metrics {
  override publishStoredMetrics(): this {
    if (this.hasStoredMetrics()) return super.publishStoredMetrics();
    // An empty flush still ends the invocation: nothing of it may reach the next one's metrics.
    this.clearDimensions();
    this.clearMetadata();
    return this;
  }
}

/** CloudWatch metrics in EMF: one namespace for the project, the stage's service as a dimension. */
export const metrics = new QuietMetrics({
  namespace: 'B24MessageEditor',
  serviceName: serviceNameOf(process.env),
});
export { MetricUnit };
