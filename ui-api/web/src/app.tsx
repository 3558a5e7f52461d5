import { useEffect, useState } from "preact/hooks";
import { Link, Route, Switch } from "wouter-preact";
import { api, unwrap, type WhoAmI } from "./api/client";
import { ErrorBox, Loading } from "./components";
import { useLoad } from "./lib/hooks";
import { session } from "./lib/session";
import { RunDetailPage } from "./pages/run-detail";
import { RunsPage } from "./pages/runs";
import { SessionPage } from "./pages/session";
import { SignIn } from "./pages/sign-in";

export function App() {
  const [key, setKey] = useState(session.key());
  useEffect(() => session.subscribe(() => setKey(session.key())), []);
  if (!key) return <SignIn />;
  return <SignedIn key={key} />;
}

function SignedIn() {
  const who = useLoad(() => unwrap(api.GET("/api/v1/whoami")), []);
  if (who.state === "loading") return <Loading />;
  if (who.state === "error") {
    return (
      <main class="page">
        <ErrorBox error={who.error} />
        <button onClick={() => session.signOut()}>Sign out</button>
      </main>
    );
  }
  return <Shell who={who.data} />;
}

function Shell({ who }: { who: WhoAmI }) {
  return (
    <div class="shell">
      <header class="top">
        <Link href="/runs" class="brand">
          Vigil
        </Link>
        <nav aria-label="Pages">
          <Link href="/runs" className={(active: boolean) => (active ? "active" : "")}>
            Runs
          </Link>
        </nav>
        <div class="who">
          <span title={`key ${who.key_id}`}>
            {who.project_id} · {who.roles.join(", ")}
          </span>
          <button onClick={() => session.signOut()}>Sign out</button>
        </div>
      </header>
      <main class="page">
        <Switch>
          <Route path="/">{() => <RunsPage />}</Route>
          <Route path="/runs">{() => <RunsPage />}</Route>
          <Route path="/runs/:traceId">{(params) => <RunDetailPage traceId={params.traceId} />}</Route>
          <Route path="/sessions/:sessionId">
            {(params) => <SessionPage sessionId={decodeURIComponent(params.sessionId)} />}
          </Route>
          <Route>
            <p>No page here. <Link href="/runs">Runs</Link></p>
          </Route>
        </Switch>
      </main>
    </div>
  );
}
