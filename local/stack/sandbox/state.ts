import type { ApiActivity } from '../activity.ts';
import type { DrainOutcomes } from '../drain.ts';
import type { QueueView } from '../queue-view.ts';
import type { ScheduledRun } from '../scheduler.ts';
import type { EditTotals } from './edit-tally.ts';

/** One message of the demo chat as the page shows it. */
export interface ChatMessage {
  id: number;
  author: string;
  /** The bot the message belongs to; undefined for people's messages. */
  botId: number | undefined;
  text: string;
  system: boolean;
  editCount: number;
  updatedAt: string;
  /** As Bitrix24 stores them: `{BUTTONS: [...]}` or null, and a list of blocks (or `{BLOCKS}`) or null. */
  keyboard?: unknown;
  attach?: unknown;
  /**
   * What the ledger holds for the message, added by the sandbox server when it has a ledger:
   * null when no edit of the message has been recorded; absent for people's messages.
   */
  ledger?: LedgerView | null;
  /** The status schedule that renders the message (an edit sent to it lasts until its next run). */
  statusSchedule?: { name: string; everyMs: number };
}

/** A message's ledger item as the page shows it (the fate `GET /messages/...` answers). */
export interface LedgerView {
  /** The desired `message` field; undefined when no edit set it. */
  text: string | undefined;
  keyboard: boolean;
  attach: boolean;
  status: 'applied' | 'pending' | 'failed';
  /** While pending: when it is tried next (ISO); undefined when it is due now. */
  nextRetryAt?: string;
  /** Failed: the error that failed it; pending: the last failed try's, if any. */
  error?: { code: string; description: string };
  version: number;
  appliedVersion: number;
  pendingEditIds: number;
}

export interface ScheduleState {
  name: string;
  everyMs: number;
  messageIds: number[];
  lastRun: ScheduledRun | undefined;
}

/** Everything the sandbox page shows; also its data endpoint, `GET /api/state`. */
export interface SandboxState {
  generatedAt: string;
  portal: string;
  /** The portal's host: the emulator's 127.0.0.1:port or the real portal's. */
  portalHost: string;
  mode: 'emulator' | 'real-portal';
  /** The update API's method URL, for the curl shown on the page. */
  apiUrl: string;
  /** The configured bot (the demo's, or B24_BOT_ID against a real portal), for the curl shown on the page. */
  botId: number;
  /** The demo chat; undefined against a real portal, whose messages this stack cannot read. */
  chat: { id: number; messages: ChatMessage[] } | undefined;
  /** Set when the ledger could not be read: the messages then carry no ledger view. */
  ledgerError?: string;
  queue: QueueView | { error: string };
  /**
   * Each portal's wake-up schedule, from its portal item in the ledger; added by the sandbox server
   * when it has a ledger. `{ error }` when the ledger could not be read.
   */
  wakeups?: PortalWakeupView[] | { error: string };
  requests: readonly ApiActivity[];
  /** Since start, every edit by the path it came in on and what became of it. */
  edits: EditTotals;
  /**
   * Portals edits were recorded for since start; the sandbox server shows each one's wake-up (the
   * stack's own portal always, first).
   */
  portals?: readonly string[];
  /**
   * `totals`: since start, the queue consumers' own counts: the drain's edit records by fate
   * (merged, superseded, handed back to the queue as `deferred`, invalid as `failed`) and the
   * reconcile's messages applied and Bitrix24 calls made; `pause`: the page's "Pause the drain" switch.
   */
  drain: { running: boolean; note: string; totals: DrainOutcomes; pause?: DrainPauseView };
  schedules: ScheduleState[];
}

/** A portal's wake-up schedule as the page shows it (lib/ledger/portal-item.ts `PortalItems.view`). */
export interface PortalWakeupView {
  portal: string;
  /**
   * The portal's next wake-up (ISO): a wake-up pending on the portal work queue, or a live lease
   * holder's lease end. "none" when nothing is scheduled: nothing waits in the ledger.
   */
  wakeAt: string;
  /** A reconcile holds the portal's lease now (its lease end is in the future). */
  leaseHeld: boolean;
  /** While held: when the lease ends (ISO). */
  leaseUntil?: string;
  /** The last merge of an edit into the portal's messages (ISO). */
  touchedAt?: string;
}

/** The last resume of a paused drain: the edits that were waiting and the Bitrix24 calls that applied them. */
export interface ResumeReport {
  at: string;
  /** Edits waiting at the resume: those the API deferred while paused, and the edits queue's records. */
  edits: number;
  /** Bitrix24 HTTP calls from the resume until the queues were empty (a batch call counts once). */
  calls: number;
  /** False when the queues still held edits or wake-ups when the resume stopped waiting for them. */
  landed: boolean;
  durationMs: number;
}

/** Whether the drain, the reconcile, the sweep and the status schedules are paused (nothing reconciles meanwhile). */
export interface DrainPauseView {
  paused: boolean;
  /** While paused: since when (ISO). */
  since?: string;
  /** While paused: update requests the API deferred (202): their edits wait in the ledger for their portal's wake-up. */
  editsWhilePaused: number;
  /** A resume is applying the backlog now. */
  resuming: boolean;
  lastResume?: ResumeReport;
}

/** What a button did, shown beside its form: one line, and for an edit the API's status and answer. */
export interface ActionResult {
  ok: boolean;
  summary: string;
  /** For an edit: the update API's HTTP status and the fields of its answer that matter. */
  status?: number;
  editId?: string;
  error?: string;
  description?: string;
}

/** What the page's buttons do; each is optional (real-portal mode has no emulator to steer). */
export interface SandboxActions {
  /** Sends an edit through the update API, as a caller would. */
  sendEdit?(edit: { messageId: number; text: string; async: boolean }): Promise<ActionResult>;
  /** Makes the emulator answer the next call with QUERY_LIMIT_EXCEEDED. */
  simulateBusy?(): Promise<ActionResult>;
  /** Runs every status schedule now. */
  refreshStatus?(): Promise<ActionResult>;
  /** Moves the failed edits back to the edits queue (lib/edits/failed.ts replayFailedEdits). */
  replayFailed?(): Promise<ActionResult>;
  /** Pauses the drain, the reconcile, the sweep and the status schedules: edits pile up in the ledger and the queues. */
  pauseDrain?(): Promise<ActionResult>;
  /** Resumes them, the sweep first, and reports how many calls the backlog took. */
  resumeDrain?(): Promise<ActionResult>;
}
