import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { serviceNameOf } from './service.ts';

/** CloudWatch metrics in EMF: one namespace for the project, the stage's service as a dimension. */
export const metrics = new Metrics({
  namespace: 'B24MessageEditor',
  serviceName: serviceNameOf(process.env),
});
export { MetricUnit };
