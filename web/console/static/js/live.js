// GET /api/events read with fetch and a stream reader (EventSource cannot send
// an Authorization header), reconnecting with Last-Event-ID after a back-off.

const BACKOFF_MS = [500, 1000, 2000, 5000, 10000];

export class LiveStream {
  constructor({ token, onEvent, onState, onUnauthorized }) {
    this.token = token;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onUnauthorized = onUnauthorized;
    this.lastId = null;
    this.failures = 0;
    this.controller = null;
    this.stopped = false;
    this.timer = null;
    this.state = null;
  }

  start() {
    this.stopped = false;
    this.connect();
    this.wake = () => { if (this.state === "reconnecting") this.retryNow(); };
    window.addEventListener("online", this.wake);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener("online", this.wake);
    if (this.controller) this.controller.abort();
  }

  retryNow() {
    clearTimeout(this.timer);
    if (this.controller) this.controller.abort();
    this.connect();
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  async connect() {
    if (this.stopped) return;
    const controller = new AbortController();
    this.controller = controller;
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${this.token}` };
    if (this.lastId !== null) headers["Last-Event-ID"] = String(this.lastId);
    try {
      const response = await fetch("/api/events", { headers, signal: controller.signal,
                                                    cache: "no-store" });
      if (response.status === 401) {
        this.stopped = true;
        const problem = await response.json().catch(() => ({}));
        this.onUnauthorized(problem);
        return;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      this.setState("live");
      await this.read(response.body.getReader());
      throw new Error("stream ended");
    } catch (error) {
      if (this.stopped || controller !== this.controller) return;
      this.setState("reconnecting");
      const delay = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
      this.failures += 1;
      this.timer = setTimeout(() => this.connect(), delay * (0.8 + Math.random() * 0.4));
    }
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      buffer = buffer.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        this.failures = 0;  // the service is talking: the next drop starts the back-off over
        this.dispatch(frame);
      }
    }
  }

  dispatch(frame) {
    let id = null;
    let type = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") id = value;
      else if (field === "event") type = value;
      else if (field === "data") data.push(value);
    }
    if (id !== null && /^\d+$/.test(id)) this.lastId = Number(id);
    if (!data.length) return;
    let envelope;
    try { envelope = JSON.parse(data.join("\n")); } catch { return; }
    try {
      this.onEvent({ type: envelope.type || type, envelope });
    } catch (error) {
      console.warn("live event handler failed", error);
    }
  }
}
