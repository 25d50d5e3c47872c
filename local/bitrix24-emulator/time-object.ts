import type { B24Time } from '../../lib/bitrix24/types.ts';
import type { OperatingState } from './operating-time.ts';

export type { B24Time };

/** Bitrix24 prints dates as ISO 8601 with a numeric offset, never `Z`. */
export function isoWithOffset(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
}

export function timeObject(
  startMs: number,
  processingMs: number,
  operating: OperatingState,
): Required<B24Time> {
  return {
    start: startMs / 1000,
    finish: (startMs + processingMs) / 1000,
    duration: processingMs / 1000,
    processing: processingMs / 1000,
    date_start: isoWithOffset(startMs),
    date_finish: isoWithOffset(startMs + processingMs),
    operating: operating.operating,
    operating_reset_at: operating.resetAt,
  };
}
