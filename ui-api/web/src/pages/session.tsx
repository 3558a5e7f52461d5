import { Link } from "wouter-preact";
import { api, unwrap } from "../api/client";
import { Badge, Content, Load } from "../components";
import { duration, time } from "../lib/format";
import { useLoad } from "../lib/hooks";

/** A session's runs in order, as a conversation: each run's input, then its output. */
export function SessionPage({ sessionId }: { sessionId: string }) {
  const loaded = useLoad(
    () => unwrap(api.GET("/api/v1/sessions/{session_id}", { params: { path: { session_id: sessionId } } })),
    [sessionId],
  );
  return (
    <section>
      <h1>
        Session <code>{sessionId}</code>
      </h1>
      <Load loaded={loaded}>
        {(session) => (
          <ol class="conversation">
            {session.runs.map((run) => (
              <li key={run.trace_id}>
                <div class="turn-head">
                  <Link href={`/runs/${run.trace_id}`}>{time(run.start_time)}</Link> · {run.agent_name} ·{" "}
                  <Badge kind={run.outcome}>{run.outcome}</Badge> · {duration(run.duration_ms)}
                </div>
                <div class="turn user">
                  <Content text={run.input} classification={run.classification} />
                </div>
                <div class="turn agent">
                  <Content text={run.output} classification={run.classification} />
                </div>
              </li>
            ))}
          </ol>
        )}
      </Load>
    </section>
  );
}
