// Prints vitest's JSON report as the plain closing line CI reads: "N passed, N failed".
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? '.reports/vitest.json';
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch {
  console.log('0 passed, 0 failed');
  process.exit(0);
}
const passed = report.numPassedTests ?? 0;
const failed =
  (report.numFailedTests ?? 0) +
  (report.numRuntimeErrorTests ?? 0) +
  (report.success === false && !report.numFailedTests ? 1 : 0);
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
// The suite's wall time, first test file's start to last one's end.
const files = report.testResults ?? [];
const ends = files.map((f) => f.endTime).filter(Number.isFinite);
if (ends.length > 0 && Number.isFinite(report.startTime)) {
  const seconds = Math.round((Math.max(...ends) - report.startTime) / 1000);
  console.log(`${files.length} test files in ${seconds} s`);
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
