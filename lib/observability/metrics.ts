import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

/** CloudWatch metrics in EMF, one namespace for the project. */
export const metrics = new Metrics({ namespace: 'B24MessageEditor', serviceName: 'b24-message-editor' });
export { MetricUnit };
