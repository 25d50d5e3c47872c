// npm run deploy -- --stage prod [package options] [osls options]
//
// The one way to deploy: `npm run package` with the same arguments (status schedules validated, bundles
// built, the template checked), then `osls deploy --package <that folder>`, so what is deployed is exactly
// the package that passed the checks.
import { type CommandSpec, helpText, runCommand, wantsHelp } from './cli.ts';
import { explainFailure, osls, PACKAGE_OPTIONS, packageStack, parsePackageArgs } from './package.ts';

const COMMAND: CommandSpec = {
  name: 'npm run deploy',
  summary:
    'Packages the stack as `npm run package` does (its checks included), then deploys that package with\n' +
    '`osls deploy`. Needs AWS credentials in the shell (AWS_PROFILE or the usual variables). Other\n' +
    'arguments go to osls unchanged, on both steps.',
  usage: '-- --stage <stage> [options] [osls options]',
  options: PACKAGE_OPTIONS,
  examples: [
    'npm run deploy -- --stage prod --param "alarmTopicArn=arn:aws:sns:eu-central-1:123456789012:alerts"',
  ],
};

if (wantsHelp(process.argv.slice(2))) {
  process.stdout.write(helpText(COMMAND));
} else {
  await runCommand(
    COMMAND,
    () => {
      const options = parsePackageArgs(process.argv.slice(2));
      packageStack(options);
      osls(['deploy', ...options.slsArgs]);
    },
    explainFailure,
  );
}
