export { listenOnLoopback } from '../../local/listen.ts';
