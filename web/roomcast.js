// @ts-check
/**
 * roomcast.js: the JavaScript client of roomcast's WebSocket protocol
 * (PROTOCOL.md version 1, docs/protocol.md). One ES module, no
 * dependencies; runs in browsers and in Node (pass a WebSocket constructor,
 * e.g. the `ws` package, where there is no global one).
 *
 * ```js
 * import { RoomcastClient } from './roomcast.js';
 * const client = new RoomcastClient('wss://chat.example.com/ws', { user: 'alice' });
 * client.on('message', (m) => console.log(m.room, m.from, m.data));
 * await client.connect();
 * await client.join('chat:lobby');
 * await client.publish('chat:lobby', { text: 'hi' });
 * ```
 *
 * Guarantees and non-guarantees (see docs/web-client.md):
 * - every request method returns a promise settled by the frame that answers
 *   it (matched by a request `id` the client assigns): `joined`, `left` or
 *   `ack` resolve it, an `error` frame rejects it with a RoomcastError;
 * - a request that was sent but not answered when the socket closes is
 *   rejected with code `disconnected`: it may or may not have taken effect;
 * - requests made while disconnected (or before connect()) wait, bounded
 *   by `requestTimeout` and `maxQueue`, and are sent after the next
 *   `welcome`, behind the rejoins;
 * - after a reconnect the client joins its rooms again, then fires `gap` for
 *   each room whose `epoch` changed or whose `seq` moved past what it saw.
 *
 * @module roomcast
 */

// -- types ---------------------------------------------------------------------

/**
 * A frame as it travels: one JSON object with a string `type`.
 * @typedef {{type: string, [key: string]: any}} Frame
 */

/**
 * @typedef {object} BackoffOptions
 * @property {number} [initial=250] delay before the first reconnect, in ms
 * @property {number} [max=10000] upper bound of any delay, in ms
 * @property {number} [factor=2] growth per consecutive failed attempt
 * @property {number} [jitter=0.5] fraction of each delay that is random: the
 *   delay is `d * (1 - jitter * Math.random())` ("equal jitter" at 0.5)
 * @property {number} [maxAttempts=Infinity] consecutive failed attempts
 *   after which the client gives up (state `closed`, `close` with `final`)
 */

/**
 * @typedef {object} RoomcastOptions
 * @property {string} [user] identity in development mode (`?user=`)
 * @property {string | (() => string | Promise<string>)} [token] a JWT, or a
 *   function returning one, called before every connection attempt (so an
 *   expired token can be refreshed); sent as `?token=`
 * @property {any} [WebSocket] WebSocket constructor; default the global one
 * @property {boolean} [reconnect=true] reconnect after an unexpected close
 * @property {BackoffOptions} [backoff] reconnect delays
 * @property {number} [connectTimeout=10000] socket open + `welcome` within this (ms)
 * @property {number} [requestTimeout=10000] a request not answered within this
 *   is rejected with code `timeout` (ms; counts from the call)
 * @property {number} [pingInterval=25000] when nothing arrived for this long
 *   the client sends `ping`; 0 disables the check (ms)
 * @property {number} [pongTimeout=10000] no frame within this after a ping:
 *   the connection is considered dead and replaced (ms)
 * @property {boolean} [queueOffline=true] keep requests made while
 *   disconnected until the next connection (else reject: `not_connected`)
 * @property {number} [maxQueue=1000] requests kept while disconnected
 */

/**
 * Client state: `idle` (not started), `connecting` (first attempt),
 * `open` (welcome received), `reconnecting` (waiting or retrying after a
 * close), `closed` (close() was called or the client gave up).
 * @typedef {'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'} ClientState
 */

/**
 * Detail of a `gap` event.
 * @typedef {object} GapDetail
 * @property {string} room
 * @property {'seq' | 'epoch'} reason `seq`: messages of the same incarnation
 *   were missed; `epoch`: the room restarted (its node failed, or its logic
 *   was restarted) and its earlier messages and state may be gone
 * @property {number | null} missed how many messages were missed (`null`
 *   when unknown, i.e. for `epoch`)
 * @property {number} [from] first missed seq (reason `seq`)
 * @property {number} [to] last missed seq (reason `seq`)
 * @property {string} epoch the room's current epoch
 * @property {string} [previousEpoch] the epoch before (reason `epoch`)
 * @property {number} seq the room's seq now
 */

/** Names of rooms and users: 1 to 128 bytes of `[A-Za-z0-9_.:@-]`. */
export const NAME_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;

/**
 * Events the client itself fires. A frame whose `type` is one of these is
 * delivered only as a `frame` event, never under its own type.
 */
const LIFECYCLE_EVENTS = new Set(['open', 'close', 'state', 'reconnecting', 'gap', 'frame']);

const OPEN = 1; // WebSocket.OPEN, the same in every implementation

// -- errors and events -------------------------------------------------------------

/**
 * The error of a request or of the connection. `code` is the server's code
 * (`bad_json`, `bad_request`, `unknown_type`, `bad_name`, `not_member`,
 * `forbidden`, `rate_limited`, `unavailable`, `internal`) or one of the
 * client's: `disconnected` (the socket closed before the answer), `closed`
 * (close() was called), `timeout`, `not_connected`, `queue_full`,
 * `cancelled` (a queued join overtaken by a leave), `socket_error`,
 * `protocol` (a frame that is not a JSON object).
 */
export class RoomcastError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{id?: any, request?: Frame, frame?: Frame, room?: string}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'RoomcastError';
    /** @type {string} */
    this.code = code;
    /** The request id, when the error answers a request. */
    this.id = extra.id;
    /** The request that failed, when there is one. */
    this.request = extra.request;
    /** The server's `error` frame, when it came from the server. */
    this.frame = extra.frame;
    /** The room concerned (for failed rejoins). */
    this.room = extra.room ?? extra.request?.room;
  }
}

/** The event type the client dispatches; the payload is in `detail`. */
export class RoomcastEvent extends Event {
  /** @param {string} type @param {any} detail */
  constructor(type, detail) {
    super(type);
    /** The frame (for frame events) or the event's description. */
    this.detail = detail;
  }
}

// -- the client ----------------------------------------------------------------------

/**
 * @typedef {object} Pending
 * @property {Frame} frame the request as sent
 * @property {(f: Frame) => void} resolve
 * @property {(e: RoomcastError) => void} reject
 * @property {any} timer
 * @property {boolean} sent
 */

/**
 * What the client knows of one room it is (or wants to be) a member of.
 * @typedef {object} RoomState
 * @property {boolean} wanted join it again after a reconnect
 * @property {boolean} joined a `joined` arrived on the current connection
 * @property {string | undefined} epoch
 * @property {number} seq highest seq accounted for (delivered or own, acked)
 * @property {Set<number>} own seqs of our own publishes acked ahead of `seq`
 * @property {Set<number>} holes seqs skipped, not yet known to be our own
 * @property {number} publishing our publishes to it still unanswered
 */

/**
 * One logical connection to a roomcast cluster, kept alive across socket
 * closes. Not thread-safe in any sense that matters to JavaScript: all of it
 * runs on the event loop that created it.
 *
 * Events (`addEventListener(type, e => e.detail)` or `on(type, detail => …)`):
 * - `state` `{state, previous}`; `open` `{url}` (socket open, before
 *   `welcome`); `welcome` (the frame); `close` `{code, reason, wasClean, url,
 *   willReconnect, final}`; `reconnecting` `{attempt, delay, url}`;
 * - `message`, `private`, `broadcast`, `joined`, `left`, `ack`, `pong` and
 *   any type a room logic sends (`presence`, `history`, …): the frame. A
 *   `private` whose `id` was seen among the last 1024 is a copy the server
 *   delivered again after a crash: it gets no `private` event (only `frame`);
 * - `gap` (GapDetail); `error` (a RoomcastError: an `error` frame that
 *   answers no pending request, a failed rejoin, a socket error);
 * - `frame`: every frame received, whatever its type.
 */
export class RoomcastClient extends EventTarget {
  /** @type {string[]} */ #urls;
  /** @type {RoomcastOptions} */ #opts;
  /** @type {Required<BackoffOptions>} */ #backoff;
  /** @type {any} */ #Ctor;
  /** @type {any} */ #ws = null;
  /** @type {ClientState} */ #state = 'idle';
  #urlIndex = 0;
  #failures = 0;
  #nextId = 1;
  /** @type {Map<any, Pending>} */ #pending = new Map();
  /** @type {Pending[]} */ #queue = [];
  /** @type {Map<string, RoomState>} */ #rooms = new Map();
  /** Ids of the last private messages, oldest first (to drop redelivered copies). */
  /** @type {Set<string>} */ #seenPrivate = new Set();
  /** @type {any} */ #retryTimer = null;
  /** @type {any} */ #connectTimer = null;
  /** @type {any} */ #pingTimer = null;
  #lastFrameAt = 0;
  #pingSentAt = 0;
  #generation = 0;
  /** @type {Frame | null} */ #welcome = null;
  /** @type {{resolve: (f: Frame) => void, reject: (e: Error) => void}[]} */ #connectWaiters = [];
  /** @type {Map<string, Map<Function, EventListener>>} */ #wrapped = new Map();

  /**
   * @param {string | string[]} url `ws://host:port/ws` or `wss://…`, or a list
   *   of them: the client starts with the first and moves to the next one
   *   after every close or failed attempt (fail-over between nodes). A
   *   path such as `/ws` is resolved against the page's location.
   * @param {RoomcastOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    const urls = (Array.isArray(url) ? url : [url]).map(resolveUrl);
    if (urls.length === 0) throw new TypeError('RoomcastClient needs at least one URL');
    this.#urls = urls;
    this.#opts = options;
    this.#backoff = {
      initial: 250, max: 10000, factor: 2, jitter: 0.5, maxAttempts: Infinity,
      ...(options.backoff ?? {}),
    };
    this.#Ctor = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.#Ctor !== 'function')
      throw new TypeError('no WebSocket constructor: pass options.WebSocket (e.g. the "ws" package)');
  }

  // -- properties --------------------------------------------------------------------

  /** @returns {ClientState} */
  get state() { return this.#state; }
  /** The user the server named us in `welcome` (null before it). */
  get user() { return this.#welcome?.user ?? null; }
  /** The node we are connected to (from `welcome`; null when not open). */
  get node() { return this.#state === 'open' ? this.#welcome?.node ?? null : null; }
  /** The URL of the current (or last) connection attempt. */
  get url() { return this.#urls[this.#urlIndex]; }
  /** The URLs the client rotates through. */
  get urls() { return [...this.#urls]; }
  /** Rooms the client is a member of, or will join again after a reconnect. */
  get rooms() { return [...this.#rooms].filter(([, r]) => r.wanted).map(([name]) => name); }

  /**
   * What the client knows of a room: `{seq, epoch, joined}`, or null.
   * @param {string} room
   */
  roomInfo(room) {
    const r = this.#rooms.get(room);
    return r ? { seq: r.seq, epoch: r.epoch, joined: r.joined } : null;
  }

  // -- events -------------------------------------------------------------------------

  /**
   * Calls `fn(detail, event)` for every event of `type`; returns a function
   * that removes it.
   * @param {string} type
   * @param {(detail: any, event: RoomcastEvent) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    let byFn = this.#wrapped.get(type);
    if (!byFn) this.#wrapped.set(type, (byFn = new Map()));
    if (!byFn.has(fn)) {
      /** @type {EventListener} */
      const listener = (e) => fn(/** @type {RoomcastEvent} */ (e).detail, /** @type {RoomcastEvent} */ (e));
      byFn.set(fn, listener);
      this.addEventListener(type, listener);
    }
    return () => this.off(type, fn);
  }

  /**
   * Removes a function added with on().
   * @param {string} type
   * @param {Function} fn
   */
  off(type, fn) {
    const listener = this.#wrapped.get(type)?.get(fn);
    if (listener) {
      this.removeEventListener(type, listener);
      this.#wrapped.get(type)?.delete(fn);
    }
  }

  /**
   * Resolves with the detail of the next event of `type`.
   * @param {string} type
   * @param {(detail: any) => boolean} [filter]
   * @returns {Promise<any>}
   */
  once(type, filter = () => true) {
    return new Promise((resolve) => {
      const off = this.on(type, (detail) => {
        if (!filter(detail)) return;
        off();
        resolve(detail);
      });
    });
  }

  /** @param {string} type @param {any} detail */
  #emit(type, detail) {
    this.dispatchEvent(new RoomcastEvent(type, detail));
  }

  /** @param {ClientState} next */
  #setState(next) {
    if (next === this.#state) return;
    const previous = this.#state;
    this.#state = next;
    this.#emit('state', { state: next, previous });
  }

  // -- lifecycle -----------------------------------------------------------------------

  /**
   * Starts connecting (if not already) and resolves with the `welcome` frame
   * of the first successful connection. Rejects only when the client is
   * closed or gives up (`backoff.maxAttempts`) before that.
   * @returns {Promise<Frame>}
   */
  connect() {
    if (this.#state === 'open' && this.#welcome) return Promise.resolve(this.#welcome);
    const p = new Promise((resolve, reject) => this.#connectWaiters.push({ resolve, reject }));
    if (this.#state === 'idle' || this.#state === 'closed') {
      this.#failures = 0;
      this.#setState('connecting');
      this.#attempt();
    }
    return /** @type {Promise<Frame>} */ (p);
  }

  /**
   * Closes the connection for good: no reconnect, every pending and queued
   * request is rejected with code `closed`. connect() starts again.
   * @param {number} [code=1000]
   * @param {string} [reason]
   */
  close(code = 1000, reason = 'client closed') {
    if (this.#state === 'closed') return;
    const ws = this.#ws;
    const wasOpen = ws !== null;
    this.#detach();
    if (ws) {
      try { ws.close(code, reason); } catch { /* already closing */ }
    }
    this.#setState('closed');
    this.#failAll('closed', 'the client was closed');
    for (const r of this.#rooms.values()) r.joined = false;
    this.#rejectConnectWaiters(new RoomcastError('closed', 'the client was closed'));
    if (wasOpen)
      this.#emit('close', { code, reason, wasClean: true, url: this.url, willReconnect: false, final: true });
  }

  /** Opens one socket to the current URL. */
  async #attempt() {
    const generation = ++this.#generation;
    let token;
    try {
      token = typeof this.#opts.token === 'function' ? await this.#opts.token() : this.#opts.token;
    } catch (err) {
      if (generation !== this.#generation || this.#state === 'closed') return;
      this.#emit('error', new RoomcastError('socket_error', `token function failed: ${err}`));
      return this.#attemptFailed();
    }
    if (generation !== this.#generation || this.#state === 'closed') return;
    const url = withIdentity(this.url, token, this.#opts.user);
    let ws;
    try {
      ws = new this.#Ctor(url);
    } catch (err) {
      this.#emit('error', new RoomcastError('socket_error', `cannot open ${this.url}: ${err}`));
      return this.#attemptFailed();
    }
    this.#ws = ws;
    this.#connectTimer = setTimeout(() => {
      if (ws !== this.#ws) return;
      this.#dropSocket(4000, `no welcome within ${this.#opts.connectTimeout ?? 10000} ms`);
    }, this.#opts.connectTimeout ?? 10000);
    ws.onopen = () => {
      if (ws === this.#ws) this.#emit('open', { url: this.url });
    };
    ws.onmessage = (/** @type {{data: any}} */ e) => {
      if (ws === this.#ws) this.#onData(e.data);
    };
    ws.onerror = (/** @type {any} */ e) => {
      if (ws === this.#ws)
        this.#emit('error', new RoomcastError('socket_error', `WebSocket error on ${this.url}${e?.message ? `: ${e.message}` : ''}`));
    };
    ws.onclose = (/** @type {{code: number, reason: string, wasClean: boolean}} */ e) => {
      if (ws === this.#ws) this.#onSocketClosed(e.code, e.reason, e.wasClean);
    };
  }

  /** Stops listening to the current socket and clears its timers. */
  #detach() {
    const ws = this.#ws;
    this.#ws = null;
    this.#generation++;
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#retryTimer);
    clearInterval(this.#pingTimer);
    this.#connectTimer = this.#retryTimer = this.#pingTimer = null;
    // No-ops rather than null: some implementations (the `ws` package) throw
    // when an `error` event finds no listener, e.g. after close() while
    // still connecting.
    if (ws) ws.onopen = ws.onmessage = ws.onerror = ws.onclose = () => {};
    return ws;
  }

  /**
   * Gives up on a socket that does not answer (no welcome, no pong): closes
   * it without waiting for its close handshake and reconnects.
   * @param {number} code
   * @param {string} reason
   */
  #dropSocket(code, reason) {
    const ws = this.#ws;
    try { ws?.close(code, reason); } catch { /* ignore */ }
    this.#onSocketClosed(code, reason, false);
  }

  /**
   * @param {number} code
   * @param {string} reason
   * @param {boolean} wasClean
   */
  #onSocketClosed(code, reason, wasClean) {
    const url = this.url;
    const wasOpen = this.#state === 'open';
    this.#detach();
    for (const r of this.#rooms.values()) r.joined = false;
    // Unanswered requests may or may not have taken effect: say so.
    this.#failPending('disconnected', `connection to ${url} closed (${code}${reason ? ` ${reason}` : ''}) before the answer`);
    this.#settleGaps();
    if (!wasOpen) this.#failures++;
    const willReconnect = this.#opts.reconnect !== false && this.#failures < this.#backoff.maxAttempts;
    this.#emit('close', { code, reason, wasClean, url, willReconnect, final: !willReconnect });
    if (willReconnect) {
      this.#scheduleRetry();
    } else {
      this.#setState('closed');
      this.#failAll('closed', `gave up after ${this.#failures} failed attempts`);
      this.#rejectConnectWaiters(new RoomcastError('closed', `could not connect to ${this.#urls.join(', ')}`));
    }
  }

  /** An attempt failed before it had a socket (token function, constructor). */
  #attemptFailed() {
    this.#failures++;
    if (this.#failures < this.#backoff.maxAttempts) return this.#scheduleRetry();
    this.#setState('closed');
    this.#failAll('closed', `gave up after ${this.#failures} failed attempts`);
    this.#rejectConnectWaiters(new RoomcastError('closed', `could not connect to ${this.#urls.join(', ')}`));
  }

  /** Waits a jittered, exponentially growing delay, then tries the next URL. */
  #scheduleRetry() {
    if (this.#state === 'closed') return;
    this.#setState('reconnecting');
    const delay = this.nextDelay(this.#failures);
    this.#urlIndex = (this.#urlIndex + 1) % this.#urls.length;
    const attempt = this.#failures + 1;
    this.#emit('reconnecting', { attempt, delay, url: this.url });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#attempt();
    }, delay);
  }

  /**
   * The delay before the reconnect that follows `failures` consecutive
   * failed attempts: `min(max, initial * factor^failures)`, minus up to
   * `jitter` of it at random. Public so that it can be shown and tested.
   * @param {number} failures
   */
  nextDelay(failures) {
    const { initial, max, factor, jitter } = this.#backoff;
    const base = Math.min(max, initial * Math.pow(factor, failures));
    return Math.round(base * (1 - jitter * Math.random()));
  }

  // -- frames in ------------------------------------------------------------------------

  /** @param {any} data */
  #onData(data) {
    if (typeof data !== 'string') {
      if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) data = new TextDecoder().decode(data);
      else return; // a Blob: the protocol has no binary frames
    }
    /** @type {Frame} */
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      this.#emit('error', new RoomcastError('protocol', `frame is not JSON: ${data.slice(0, 100)}`));
      return;
    }
    if (!frame || typeof frame !== 'object' || typeof frame.type !== 'string') {
      this.#emit('error', new RoomcastError('protocol', `frame has no type: ${data.slice(0, 100)}`));
      return;
    }
    this.#lastFrameAt = Date.now();
    this.#pingSentAt = 0;
    let settled = false;
    switch (frame.type) {
      case 'welcome': this.#onWelcome(frame); break;
      case 'joined': this.#onJoined(frame); break;
      case 'left': this.#rooms.delete(frame.room); break;
      case 'message': this.#onMessage(frame); break;
    }
    if (frame.id !== undefined && ['ack', 'joined', 'left', 'error'].includes(frame.type))
      settled = this.#settle(frame);
    this.#emit('frame', frame);
    if (frame.type === 'private' && this.#seenBefore(frame.id))
      return;
    if (frame.type === 'error') {
      if (!settled)
        this.#emit('error', new RoomcastError(frame.code ?? 'internal', frame.message ?? 'error', { id: frame.id, frame }));
    } else if (!LIFECYCLE_EVENTS.has(frame.type)) {
      this.#emit(frame.type, frame);
    }
  }

  /**
   * Whether a private message's id was seen (then it is a redelivered copy);
   * remembers it otherwise. Bounded: a copy comes soon after the original.
   * @param {unknown} id
   */
  #seenBefore(id) {
    if (typeof id !== 'string')
      return false;
    if (this.#seenPrivate.has(id))
      return true;
    this.#seenPrivate.add(id);
    if (this.#seenPrivate.size > 1024)
      this.#seenPrivate.delete(this.#seenPrivate.values().next().value);
    return false;
  }

  /** @param {Frame} frame */
  #onWelcome(frame) {
    clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
    this.#welcome = frame;
    this.#failures = 0;
    this.#setState('open');
    this.#startHeartbeat();
    // Rejoin first: the server handles a connection's requests in order, so
    // queued publishes sent behind the joins find their rooms joined.
    const queuedJoins = new Set(this.#queue.filter((p) => p.frame.type === 'join').map((p) => p.frame.room));
    for (const [room, r] of this.#rooms)
      if (r.wanted && !queuedJoins.has(room)) this.#rejoin(room);
    const queue = this.#queue;
    this.#queue = [];
    for (const p of queue) this.#transmit(p);
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const w of waiters) w.resolve(frame);
  }

  /** @param {string} room */
  #rejoin(room) {
    this.#request({ type: 'join', room }).catch((/** @type {RoomcastError} */ err) => {
      if (['disconnected', 'closed'].includes(err.code)) return; // the next welcome retries
      const r = this.#rooms.get(room);
      const retry = ['unavailable', 'timeout', 'rate_limited', 'internal'].includes(err.code);
      this.#emit('error', new RoomcastError(err.code, `could not rejoin ${room}: ${err.message}`, { room, frame: err.frame, request: err.request }));
      if (!retry) {
        this.#rooms.delete(room);
        return;
      }
      setTimeout(() => {
        if (this.#state === 'open' && r && r.wanted && !r.joined && this.#rooms.get(room) === r) this.#rejoin(room);
      }, this.nextDelay(1));
    });
  }

  /** @param {Frame} frame */
  #onJoined(frame) {
    let r = this.#rooms.get(frame.room);
    if (!r) {
      r = newRoomState();
      this.#rooms.set(frame.room, r);
    }
    r.joined = true;
    r.wanted = true;
    const seq = Number(frame.seq) || 0;
    if (r.epoch !== undefined && r.epoch !== frame.epoch) {
      const gap = {
        room: frame.room, reason: 'epoch', missed: null, epoch: frame.epoch,
        previousEpoch: r.epoch, seq,
      };
      r.epoch = frame.epoch;
      r.seq = seq;
      r.own.clear();
      r.holes.clear();
      this.#emit('gap', gap);
      return;
    }
    const first = r.epoch === undefined;
    r.epoch = frame.epoch;
    if (first) {
      r.seq = seq;
      return;
    }
    this.#advance(frame.room, r, seq, true);
  }

  /** @param {Frame} frame */
  #onMessage(frame) {
    const r = this.#rooms.get(frame.room);
    if (!r || r.epoch === undefined || typeof frame.seq !== 'number') return;
    this.#advance(frame.room, r, frame.seq, false);
  }

  /**
   * Accounts for `seq` having been seen in `room` (a message, our own acked
   * publish, or a `joined` that says where the room is): seqs skipped on the
   * way become holes, unless they turn out to be our own publishes (acks and
   * messages travel separately, so an ack may come after later messages).
   * @param {string} room
   * @param {RoomState} r
   * @param {number} seq
   * @param {boolean} isJoined
   */
  #advance(room, r, seq, isJoined) {
    if (seq <= r.seq) {
      r.holes.delete(seq);
    } else {
      let next = r.seq + 1;
      const skipped = seq - next; // seqs strictly between r.seq and seq
      if (skipped > 10000) {
        r.holes.clear();
        r.own.clear();
        r.seq = seq;
        this.#emit('gap', { room, reason: 'seq', missed: isJoined ? skipped + 1 : skipped, from: next, to: isJoined ? seq : seq - 1, epoch: r.epoch, seq });
        return;
      }
      for (; next < seq; next++) if (!r.own.delete(next)) r.holes.add(next);
      // A joined's seq is the last message of the room: it was missed too
      // (unless it is our own).
      if (isJoined && !r.own.delete(seq)) r.holes.add(seq);
      r.own.delete(seq);
      r.seq = seq;
      while (r.own.delete(r.seq + 1)) r.seq++;
    }
    this.#checkGap(room, r);
  }

  /**
   * Our publish to `room` was acked with `seq`.
   * @param {string} room
   * @param {number} seq
   */
  #ownSeq(room, seq) {
    const r = this.#rooms.get(room);
    if (!r || typeof seq !== 'number') return;
    if (seq <= r.seq) {
      r.holes.delete(seq);
    } else if (seq === r.seq + 1) {
      r.seq = seq;
      while (r.own.delete(r.seq + 1)) r.seq++;
    } else {
      r.own.add(seq);
    }
  }

  /**
   * Reports the holes of a room once none of them can still be an own
   * publish whose ack is on its way.
   * @param {string} room
   * @param {RoomState} r
   */
  #checkGap(room, r) {
    if (r.publishing > 0 || r.holes.size === 0) return;
    const seqs = [...r.holes].sort((a, b) => a - b);
    r.holes.clear();
    this.#emit('gap', {
      room, reason: 'seq', missed: seqs.length, from: seqs[0], to: seqs[seqs.length - 1],
      epoch: r.epoch, seq: r.seq,
    });
  }

  /** After a close: only queued publishes can still be answered. */
  #settleGaps() {
    for (const [room, r] of this.#rooms) {
      r.publishing = this.#queue.filter((p) => p.frame.type === 'publish' && p.frame.room === room).length;
      this.#checkGap(room, r);
    }
  }

  // -- requests -----------------------------------------------------------------------

  /**
   * Joins a room. Resolves with the `joined` frame (`{room, seq, epoch}`);
   * the client joins it again after every reconnect until leave().
   * @param {string} room
   * @param {{timeout?: number}} [options]
   * @returns {Promise<Frame>}
   */
  join(room, options = {}) {
    if (!NAME_RE.test(room)) return Promise.reject(badName(room));
    const r = this.#rooms.get(room) ?? newRoomState();
    r.wanted = true;
    this.#rooms.set(room, r);
    return this.#request({ type: 'join', room }, options).catch((err) => {
      // A first join that failed (forbidden, …) leaves nothing to rejoin.
      if (this.#rooms.get(room) === r && r.epoch === undefined && !['disconnected', 'timeout'].includes(err.code))
        this.#rooms.delete(room);
      throw err;
    });
  }

  /**
   * Leaves a room. Resolves with the `left` frame; while disconnected it
   * resolves at once (the room is simply not joined again).
   * @param {string} room
   * @param {{timeout?: number}} [options]
   * @returns {Promise<Frame>}
   */
  leave(room, options = {}) {
    if (!NAME_RE.test(room)) return Promise.reject(badName(room));
    const r = this.#rooms.get(room);
    if (r) r.wanted = false;
    if (this.#state !== 'open') {
      this.#rooms.delete(room);
      this.#queue = this.#queue.filter((p) => {
        if (p.frame.type !== 'join' || p.frame.room !== room) return true;
        clearTimeout(p.timer);
        p.reject(new RoomcastError('cancelled', `join of ${room} cancelled by leave`, { request: p.frame }));
        return false;
      });
      return Promise.resolve({ type: 'left', room });
    }
    return this.#request({ type: 'leave', room }, options).then(
      (f) => { this.#rooms.delete(room); return f; },
      (err) => {
        // Not a member, or the connection (and with it the membership) is gone.
        if (['not_member', 'disconnected'].includes(err.code) && this.#rooms.get(room) === r) this.#rooms.delete(room);
        throw err;
      });
  }

  /**
   * Publishes `data` (any JSON value) to a room the client has joined.
   * Resolves with the `ack` frame, whose `seq` is the message's seq.
   * @param {string} room
   * @param {any} data
   * @param {{echo?: boolean, timeout?: number}} [options] `echo`: receive the
   *   message as a `message` event too
   * @returns {Promise<Frame>}
   */
  publish(room, data, options = {}) {
    if (!NAME_RE.test(room)) return Promise.reject(badName(room));
    /** @type {Frame} */
    const frame = { type: 'publish', room, data: dataOf(data) };
    if (options.echo) frame.echo = true;
    return this.#request(frame, options);
  }

  /**
   * Sends `data` privately to every connection of `user` (kept by the server
   * while the user is offline). Resolves with the `ack`.
   * @param {string} user
   * @param {any} data
   * @param {{timeout?: number}} [options]
   * @returns {Promise<Frame>}
   */
  send(user, data, options = {}) {
    if (!NAME_RE.test(user)) return Promise.reject(badName(user));
    return this.#request({ type: 'send', to: user, data: dataOf(data) }, options);
  }

  /**
   * Sends `data` to every connection of the cluster, this one included.
   * Resolves with the `ack`; `forbidden` when the server disables it.
   * @param {any} data
   * @param {{timeout?: number}} [options]
   * @returns {Promise<Frame>}
   */
  broadcast(data, options = {}) {
    return this.#request({ type: 'broadcast', data: dataOf(data) }, options);
  }

  /**
   * Sends any request (for types a room logic adds) with a fresh `id`;
   * resolves with the `ack`/`joined`/`left` that carries the id, rejects
   * with the `error` that does.
   * @param {Frame} frame
   * @param {{timeout?: number}} [options]
   * @returns {Promise<Frame>}
   */
  request(frame, options = {}) {
    if (!frame || typeof frame.type !== 'string')
      return Promise.reject(new RoomcastError('bad_request', 'a request needs a string "type"'));
    return this.#request({ ...frame }, options);
  }

  /**
   * @param {Frame} frame
   * @param {{timeout?: number}} [options]
   * @returns {Promise<Frame>}
   */
  #request(frame, options = {}) {
    if (this.#state === 'closed')
      return Promise.reject(new RoomcastError('closed', 'the client is closed: call connect() first', { request: frame }));
    frame.id = this.#nextId++;
    return new Promise((resolve, reject) => {
      /** @type {Pending} */
      const p = { frame, resolve, reject, timer: null, sent: false };
      const timeout = options.timeout ?? this.#opts.requestTimeout ?? 10000;
      p.timer = setTimeout(() => {
        this.#pending.delete(frame.id);
        this.#queue = this.#queue.filter((q) => q !== p);
        this.#unpublish(p);
        reject(new RoomcastError('timeout', `no answer to ${frame.type} within ${timeout} ms`, { id: frame.id, request: frame }));
      }, timeout);
      if (frame.type === 'publish') {
        const r = this.#rooms.get(frame.room);
        if (r) r.publishing++;
      }
      if (this.#state === 'open') {
        this.#transmit(p);
      } else if (this.#opts.queueOffline === false) {
        this.#fail(p, 'not_connected', `not connected (${this.#state})`);
      } else if (this.#queue.length >= (this.#opts.maxQueue ?? 1000)) {
        this.#fail(p, 'queue_full', `more than ${this.#opts.maxQueue ?? 1000} requests wait for a connection`);
      } else {
        this.#queue.push(p);
      }
    });
  }

  /** @param {Pending} p */
  #transmit(p) {
    this.#pending.set(p.frame.id, p);
    p.sent = true;
    try {
      if (this.#ws?.readyState !== OPEN) throw new Error('socket not open');
      this.#ws.send(JSON.stringify(p.frame));
    } catch (err) {
      this.#pending.delete(p.frame.id);
      this.#fail(p, 'disconnected', `could not send: ${err}`);
    }
  }

  /**
   * Settles the request a frame answers; returns whether there was one.
   * @param {Frame} frame
   */
  #settle(frame) {
    const p = this.#pending.get(frame.id);
    if (!p) return false;
    this.#pending.delete(frame.id);
    clearTimeout(p.timer);
    if (frame.type === 'error') {
      this.#unpublish(p);
      p.reject(new RoomcastError(frame.code ?? 'internal', frame.message ?? 'request failed', { id: frame.id, request: p.frame, frame }));
    } else {
      if (p.frame.type === 'publish' && frame.type === 'ack') {
        this.#ownSeq(p.frame.room, frame.seq);
        this.#unpublish(p);
      }
      p.resolve(frame);
    }
    return true;
  }

  /** A publish is answered or abandoned: its room may report its holes now. @param {Pending} p */
  #unpublish(p) {
    if (p.frame.type !== 'publish') return;
    const r = this.#rooms.get(p.frame.room);
    if (!r || r.publishing === 0) return;
    r.publishing--;
    this.#checkGap(p.frame.room, r);
  }

  /** @param {Pending} p @param {string} code @param {string} message */
  #fail(p, code, message) {
    clearTimeout(p.timer);
    this.#unpublish(p);
    p.reject(new RoomcastError(code, message, { id: p.frame.id, request: p.frame }));
  }

  /** Rejects the requests sent and not answered. @param {string} code @param {string} message */
  #failPending(code, message) {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) this.#fail(p, code, message);
  }

  /** Rejects everything, sent or queued. @param {string} code @param {string} message */
  #failAll(code, message) {
    this.#failPending(code, message);
    const queue = this.#queue;
    this.#queue = [];
    for (const p of queue) this.#fail(p, code, message);
  }

  /** @param {Error} err */
  #rejectConnectWaiters(err) {
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const w of waiters) w.reject(err);
  }

  // -- liveness -------------------------------------------------------------------------

  /** Pings when the connection is quiet; replaces it when nothing answers. */
  #startHeartbeat() {
    const interval = this.#opts.pingInterval ?? 25000;
    if (!interval) return;
    const pongTimeout = this.#opts.pongTimeout ?? 10000;
    this.#lastFrameAt = Date.now();
    this.#pingSentAt = 0;
    const tick = Math.max(50, Math.min(interval, pongTimeout) / 2);
    this.#pingTimer = setInterval(() => {
      const now = Date.now();
      if (this.#pingSentAt && now - this.#pingSentAt >= pongTimeout) {
        this.#dropSocket(4000, `no pong within ${pongTimeout} ms`);
      } else if (!this.#pingSentAt && now - this.#lastFrameAt >= interval && this.#ws?.readyState === OPEN) {
        this.#pingSentAt = now;
        try { this.#ws.send('{"type":"ping"}'); } catch { /* the close event follows */ }
      }
    }, tick);
  }
}

// -- helpers ---------------------------------------------------------------------------

/** @returns {RoomState} */
function newRoomState() {
  return { wanted: true, joined: false, epoch: undefined, seq: 0, own: new Set(), holes: new Set(), publishing: 0 };
}

/** @param {string} name */
function badName(name) {
  return new RoomcastError('bad_name', `invalid name ${JSON.stringify(name)}: 1 to 128 characters of [A-Za-z0-9_.:@-]`);
}

/** `undefined` is not JSON: send it as null rather than dropping the field. @param {any} data */
function dataOf(data) {
  return data === undefined ? null : data;
}

/**
 * Makes `/ws` or `http://…` usable as a WebSocket URL.
 * @param {string} url
 */
function resolveUrl(url) {
  const base = /** @type {any} */ (globalThis).location?.href;
  const u = new URL(url, base);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.toString();
}

/**
 * @param {string} url
 * @param {string | undefined} token
 * @param {string | undefined} user
 */
function withIdentity(url, token, user) {
  const u = new URL(url);
  if (token) u.searchParams.set('token', token);
  else if (user) u.searchParams.set('user', user);
  return u.toString();
}
