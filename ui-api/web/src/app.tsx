import { useEffect, useState } from "preact/hooks";
import { Link, Route, Switch } from "wouter-preact";
import { api, unwrap, type WhoAmI } from "./api/client";
import { ErrorBox, Loading } from "./components";
import { useLoad } from "./lib/hooks";
import { session } from "./lib/session";
import { WhoContext } from "./lib/who";
import { AlertsPage } from "./pages/alerts";
import { AuditLogPage } from "./pages/audit-log";
import { CompliancePage } from "./pages/compliance";
import { DashboardPage } from "./pages/dashboard";
import { KeysPage } from "./pages/keys";
import { RunDetailPage } from "./pages/run-detail";
import { RunsPage } from "./pages/runs";
import { SessionPage } from "./pages/session";
import { SessionsPage } from "./pages/sessions";
import { SettingsPage } from "./pages/settings";
import { UserPage } from "./pages/user";
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

const active = (isActive: boolean) => (isActive ? "active" : "");

function Shell({ who }: { who: WhoAmI }) {
  const reads = who.roles.includes("read") || who.roles.includes("admin");
  const admin = who.roles.includes("admin");
  const audits = admin || who.roles.includes("audit");
  return (
    <WhoContext.Provider value={who}>
      <div class="shell">
        <header class="top">
          <Link href="/runs" class="brand">
            Vigil
          </Link>
          <nav aria-label="Pages">
            {reads && (
              <>
                <Link href="/runs" className={active}>
                  Runs
                </Link>
                <Link href="/sessions" className={active}>
                  Sessions
                </Link>
                <Link href="/dashboard" className={active}>
                  Dashboard
                </Link>
                <Link href="/alerts" className={active}>
                  Alerts
                </Link>
                {audits && (
                  <>
                    <Link href="/compliance" className={active}>
                      Compliance
                    </Link>
                    <Link href="/audit-log" className={active}>
                      Audit log
                    </Link>
                  </>
                )}
                {admin && (
                  <Link href="/settings/keys" className={active}>
                    Keys
                  </Link>
                )}
                <Link href="/settings" className={active}>
                  Settings
                </Link>
              </>
            )}
          </nav>
          <div class="who">
            <span title={`key ${who.key_id}`}>
              {who.project_id} · {who.roles.join(", ")}
            </span>
            <button onClick={() => session.signOut()}>Sign out</button>
          </div>
        </header>
        <main class="page">{reads ? <Pages /> : <NoReading roles={who.roles} />}</main>
      </div>
    </WhoContext.Provider>
  );
}

function NoReading({ roles }: { roles: string[] }) {
  return (
    <p class="error">
      This key can only send data (roles: {roles.join(", ")}). Sign in with a key holding <code>read</code> to
      see runs.
    </p>
  );
}

function Pages() {
  return (
    <Switch>
      <Route path="/">{() => <RunsPage />}</Route>
      <Route path="/runs">{() => <RunsPage />}</Route>
      <Route path="/runs/:traceId">{(params) => <RunDetailPage traceId={params.traceId} />}</Route>
      <Route path="/dashboard">{() => <DashboardPage />}</Route>
      <Route path="/alerts">{() => <AlertsPage />}</Route>
      <Route path="/settings/keys">{() => <KeysPage />}</Route>
      <Route path="/settings">{() => <SettingsPage />}</Route>
      <Route path="/compliance">{() => <CompliancePage />}</Route>
      <Route path="/audit-log">{() => <AuditLogPage />}</Route>
      <Route path="/sessions">{() => <SessionsPage />}</Route>
      <Route path="/users/:userHash">
        {(params) => <UserPage userHash={decodeURIComponent(params.userHash)} />}
      </Route>
      <Route path="/sessions/:sessionId">
        {(params) => <SessionPage sessionId={decodeURIComponent(params.sessionId)} />}
      </Route>
      <Route>
        <p>
          No page here. <Link href="/runs">Runs</Link>
        </p>
      </Route>
    </Switch>
  );
}
