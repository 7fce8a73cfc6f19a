/**
 * `plexus/client`: the client library (docs/client.md). Import it as
 * `import { createClient } from "plexus/client"` (package.json "exports"; the TypeScript source,
 * run with tsx) or from `src/client/index.ts`.
 */
export {
  type Attempt,
  type CallOptions,
  type Change,
  type ClientAnswer,
  type ClientOptions,
  connectionsPerServerMax,
  connectTimeoutMsDefault,
  createClient,
  DeadlineExceededError,
  deadlineMsDefault,
  dnsResolver,
  hedgeReadsAfterMsDefault,
  type Located,
  NoServerError,
  OutcomeUnknownError,
  PlexusClient,
  ProblemError,
  type RenameTarget,
  recordsRefreshMsDefault,
  requestTimeoutMsDefault,
  type SrvResolver,
} from "./client.ts";
export {
  type BackoffPolicy,
  backoffDefault,
  type Candidate,
  rfc2782Order,
  type SrvTarget,
  type Tier,
} from "./select.ts";
