// Placeholder until the local stack lands: say so loudly instead of failing silently.
console.error(
  'The local stack is not built yet: `npm start` will run the whole system on 127.0.0.1 once it lands.',
);
console.error('Meanwhile `npm test` runs the suite against the Bitrix24 emulator and the SQS emulator.');
process.exit(1);
