// Tessera room page: joins a room over the signaling WebSocket, sends the
// camera and microphone up, and plays the room's canvas and mix.
// Protocol: docs/protocol.md. A join link carries ?token=... (kept for this
// tab, then taken out of the address bar). Automation:
// ?name=..&codec=vp8|h264&autojoin=1, and window.tessera.{pc, stats(), leave()}.
// stats() reports, among the figures, the quality tier the server sends
// (`tier`) and the notice shown for it (`qualityNotice`).
// ?relay=1 sends and receives media only through the TURN relay.
// In a room of two the client connects to the other directly when the
// server says so (docs/peer-to-peer.md); ?p2p=0 keeps it on the server.
// stats() then reports `mode`, the direct connection's figures
// (`direct`) and the longest waits for a new picture and for new sound
// (`frameGapMs`, `audioGapMs`, since resetGaps(); when the longest wait
// for a picture ended, `frameGapEndMs`, and when the last move to the MCU
// was told and shown, `switchTimes`).
'use strict';
(() => {
  const params = new URLSearchParams(location.search);
  const room = decodeURIComponent(location.pathname.replace(/^\/r\//, '').replace(/\/+$/, ''));
  const wantCodec = ['vp8', 'h264'].includes(params.get('codec')) ? params.get('codec') : null;
  const autojoin = params.get('autojoin') === '1';
  const relay = params.get('relay') === '1';
  const p2p = params.get('p2p') !== '0';
  const askedRole = ['teacher', 'student', 'guest'].includes(params.get('role')) ? params.get('role') : null;
  // A join token names the room, the role and the name; keep it out of
  // the address bar (and of screenshots and copied links).
  const tokenKey = `tessera.token.${room}`;
  if (params.get('token')) {
    sessionStorage.setItem(tokenKey, params.get('token'));
    params.delete('token');
    history.replaceState(null, '', location.pathname + (params.toString() ? '?' + params : ''));
  }
  const token = sessionStorage.getItem(tokenKey);
  const $ = (id) => document.getElementById(id);
  const ui = {
    canvas: $('canvas'), preview: $('preview'), prompt: $('prompt'), form: $('name-form'),
    name: $('name'), title: $('prompt-title'), state: $('state'), count: $('count'),
    mic: $('mic'), cam: $('cam'), play: $('play'), leave: $('leave'), notice: $('notice'),
    layout: $('layout'), share: $('share'), rec: $('rec'), record: $('record'),
    lock: $('lock'), roster: $('roster'), quality: $('quality-notice'), hand: $('hand'),
    chat: $('chat'), chatLog: $('chat-log'), chatForm: $('chat-form'), chatText: $('chat-text'),
    chatSend: $('chat-send'), chatToggle: $('chat-toggle'),
  };
  const canShare = !!navigator.mediaDevices?.getDisplayMedia;

  let name = params.get('name') || localStorage.getItem('tessera.name') || '';
  let local = null;          // MediaStream from the camera and microphone
  let ws = null;
  let pc = null;
  let videoTx = null;
  let audioTx = null;
  let serverStream = null;   // what the server sends: the canvas and the mix
  let iceConfig = null;      // the ICE servers and policy of this join
  let direct = null;         // the direct connection to the other of a pair
  let shownConn = null;      // the connection whose media the page plays
  const switchTimes = [];    // when the last move to the MCU was told and shown
  const silenced = new Set(); // ids a teacher silenced
  let screenTx = null;       // send-only transceiver for a shared screen
  let screenTrack = null;
  let recording = false;
  let handUp = false;        // this participant's hand is raised
  let chatOn = true;         // students may chat
  const chatSeen = [];       // chat messages shown: {from, name, text, at}
  let lastError = null;      // the server's latest error: {code, message}
  let hands = [];            // raised hands in the order they went up: {id, name, place}
  let tileHint = null;
  let participants = 0;
  let participantId = null;
  let role = askedRole;      // the server's word once joined (a token's role)
  let locked = false;
  let leaving = false;
  let fatal = false;         // an error that retrying cannot fix
  let retries = 0;
  let reconnectTimer = null;
  let redirects = 0; // in a row, since the last join
  let redirected = 0; // in all, for stats()
  let disconnectTimer = null;
  let pendingIce = [];
  let tier = 'high';         // what the server sends us: high, low or audio-only
  let downlinkEstimate = null;

  const setState = (text) => { ui.state.textContent = text; };
  const setCount = (n) => { participants = n; ui.count.textContent = String(n); };
  function notice(text) {
    ui.notice.textContent = text || '';
    ui.notice.hidden = !text;
  }
  // A weak downlink gets a smaller canvas, or none: say so, so that a
  // frozen or blurred picture is not taken for a broken lesson.
  const qualityText = {
    high: '',
    low: 'Your connection is weak: lower quality',
    'audio-only': 'Your connection is weak: video paused',
  };
  function showQuality(t, estimate) {
    tier = t;
    downlinkEstimate = estimate ?? null;
    const text = qualityText[t] ?? '';
    ui.quality.textContent = text;
    ui.quality.hidden = !text;
  }
  const send = (msg) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg)); };

  // Camera and microphone, with whatever is there.
  async function getMedia() {
    const attempts = [
      [{ audio: true, video: { width: { ideal: 1280 }, height: { ideal: 720 } } }, null],
      [{ audio: true }, 'No camera available: others hear you but do not see you.'],
      [{ video: true }, 'No microphone available: others see you but do not hear you.'],
    ];
    for (const [constraints, missing] of attempts) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia(constraints);
        if (missing) notice(missing);
        return stream;
      } catch (e) {
        console.warn('getUserMedia', constraints, e.name);
      }
    }
    notice('No camera or microphone (missing or not allowed): you can watch and listen.');
    return new MediaStream();
  }

  // Put the wanted family first in the video m-line.
  function preferCodec(transceiver, family) {
    if (!family || !transceiver.setCodecPreferences || !window.RTCRtpReceiver?.getCapabilities) return;
    const codecs = RTCRtpReceiver.getCapabilities('video').codecs;
    const fmtp = (c) => c.sdpFmtpLine || '';
    const wanted = (c) => family === 'vp8'
      ? c.mimeType.toLowerCase() === 'video/vp8'
      : c.mimeType.toLowerCase() === 'video/h264' && /packetization-mode=1/.test(fmtp(c))
        && /profile-level-id=42e01f/i.test(fmtp(c));
    const first = codecs.filter(wanted);
    if (!first.length) return;
    transceiver.setCodecPreferences([...first, ...codecs.filter((c) => !wanted(c))]);
  }

  // Send no more than the tile the server shows us in.
  async function applyTileHint() {
    const sender = videoTx?.sender;
    if (!tileHint || !sender?.track) return;
    const s = sender.track.getSettings();
    const scale = Math.max(1, (s.width || tileHint.width) / tileHint.width,
      (s.height || tileHint.height) / tileHint.height);
    const p = sender.getParameters();
    if (!p.encodings || !p.encodings.length) p.encodings = [{}];
    p.encodings[0].scaleResolutionDownBy = scale;
    p.encodings[0].maxBitrate = tileHint.maxBitrate;
    p.encodings[0].maxFramerate = tileHint.framerate;
    try { await sender.setParameters(p); } catch (e) { console.warn('setParameters', e); }
  }

  function playCanvas() {
    ui.canvas.muted = false;
    ui.canvas.play().then(() => { ui.play.hidden = true; }).catch(() => {
      // Autoplay with sound needs a click in most browsers.
      ui.play.hidden = false;
    });
  }

  async function startCall(iceServers, iceTransportPolicy) {
    pc = new RTCPeerConnection({
      bundlePolicy: 'max-bundle', iceServers: iceServers || [],
      iceTransportPolicy: iceTransportPolicy === 'relay' ? 'relay' : 'all',
    });
    const audio = local.getAudioTracks()[0];
    const video = local.getVideoTracks()[0];
    // A face in a small tile: on a narrow uplink the browser lowers the
    // camera's resolution and keeps it moving, rather than the other way.
    if (video) video.contentHint = 'motion';
    audioTx = pc.addTransceiver(audio || 'audio', { direction: audio ? 'sendrecv' : 'recvonly', streams: [local] });
    videoTx = pc.addTransceiver(video || 'video', { direction: video ? 'sendrecv' : 'recvonly', streams: [local] });
    preferCodec(videoTx, wantCodec);
    // Negotiated up front and idle until the user shares: sharing is then
    // replaceTrack, with no renegotiation.
    screenTx = canShare ? pc.addTransceiver('video', { direction: 'sendonly' }) : null;
    if (screenTx) preferCodec(screenTx, wantCodec);
    const remote = new MediaStream();
    serverStream = remote;
    pc.ontrack = (e) => {
      remote.addTrack(e.track);
      if (direct?.shown) return;
      ui.canvas.srcObject = remote;
      playCanvas();
    };
    pc.onicecandidate = (e) => {
      if (e.candidate && e.candidate.candidate) {
        send({ type: 'ice', candidate: e.candidate.candidate,
          sdpMLineIndex: e.candidate.sdpMLineIndex ?? 0, sdpMid: e.candidate.sdpMid ?? undefined });
      }
    };
    pc.onconnectionstatechange = () => {
      const st = pc.connectionState;
      clearTimeout(disconnectTimer);
      if (st === 'connected') {
        retries = 0;
        setState('Connected');
        notice(local.getTracks().length ? '' : ui.notice.textContent);
      } else if (st === 'failed') {
        reconnect('the media connection failed');
      } else if (st === 'disconnected') {
        setState('Connection unstable…');
        disconnectTimer = setTimeout(() => reconnect('the media connection dropped'), 4000);
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    send({ type: 'offer', sdp: pc.localDescription.sdp, ...(screenTx?.mid ? { screen: screenTx.mid } : {}) });
    const mic = local.getAudioTracks()[0];
    if (!mic || !mic.enabled) send({ type: 'mute', muted: true });
    ui.share.disabled = !screenTx;
  }

  // Screen sharing: the browser asks which screen or window.
  async function startShare() {
    if (!screenTx || screenTrack) return;
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    } catch (e) {
      if (e.name !== 'NotAllowedError') notice('Screen sharing failed: ' + e.message);
      return;
    }
    const track = stream.getVideoTracks()[0];
    if (!track || !screenTx) { stream.getTracks().forEach((t) => t.stop()); return; }
    track.contentHint = 'detail';
    track.onended = stopShare;
    screenTrack = track;
    await screenTx.sender.replaceTrack(track);
    const p = screenTx.sender.getParameters();
    if (!p.encodings || !p.encodings.length) p.encodings = [{}];
    p.encodings[0].maxBitrate = 1500000;
    try { await screenTx.sender.setParameters(p); } catch (e) { console.warn('setParameters', e); }
    send({ type: 'screen', sharing: true });
    ui.share.textContent = 'Stop sharing';
    ui.share.classList.add('off');
  }

  function stopShare() {
    if (!screenTrack) return;
    screenTrack.onended = null;
    screenTrack.stop();
    screenTrack = null;
    if (screenTx && pc) screenTx.sender.replaceTrack(null).catch(() => {});
    send({ type: 'screen', sharing: false });
    ui.share.textContent = 'Share screen';
    ui.share.classList.remove('off');
  }

  // Peer-to-peer: in a room of two the server asks both clients to connect
  // directly, and the first to join offers. The connection to the server
  // stays up, paused, so that going back to the MCU when a third joins
  // needs no new ICE.
  // Pausing is replaceTrack(null): nothing is sent and nothing is
  // renegotiated (Firefox does not pause audio with `active: false`).
  function setServerSending(on) {
    for (const [tx, kind] of [[audioTx, 'audio'], [videoTx, 'video']]) {
      const track = localTrack(kind);
      if (!tx || !track || !pc) continue;
      tx.sender.replaceTrack(on ? track : null).catch((e) => console.warn('replaceTrack', e));
    }
  }

  const localTrack = (kind) => (kind === 'audio' ? local.getAudioTracks()[0] : local.getVideoTracks()[0]);

  function startDirect(peer, offerer) {
    closeDirect();
    const dpc = new RTCPeerConnection({
      bundlePolicy: 'max-bundle', iceServers: iceConfig?.iceServers || [],
      iceTransportPolicy: iceConfig?.policy === 'relay' ? 'relay' : 'all',
    });
    const d = { pc: dpc, peer, offerer, stream: new MediaStream(), up: false, shown: false,
      pendingIce: [], dropTimer: null };
    direct = d;
    if (offerer) {
      for (const kind of ['audio', 'video']) {
        const track = localTrack(kind);
        dpc.addTransceiver(track || kind, { direction: track ? 'sendrecv' : 'recvonly', streams: [local] });
      }
    }
    dpc.ontrack = (e) => { d.stream.addTrack(e.track); applySilence(); };
    dpc.onicecandidate = (e) => {
      if (direct !== d || !e.candidate?.candidate) return;
      send({ type: 'peerIce', candidate: e.candidate.candidate,
        sdpMLineIndex: e.candidate.sdpMLineIndex ?? 0, sdpMid: e.candidate.sdpMid ?? undefined });
    };
    const failed = () => { if (direct === d) send({ type: 'direct', connected: false }); };
    dpc.onconnectionstatechange = () => {
      if (direct !== d) return;
      const st = dpc.connectionState;
      clearTimeout(d.dropTimer);
      if (st === 'connected' && !d.up) {
        d.up = true;
        send({ type: 'direct', connected: true });
        showDirect(d);
      } else if (st === 'failed') {
        failed();
      } else if (st === 'disconnected') {
        d.dropTimer = setTimeout(failed, 3000);
      }
    };
    if (offerer) {
      dpc.createOffer().then((o) => dpc.setLocalDescription(o)).then(() => {
        if (direct === d) send({ type: 'peerOffer', sdp: dpc.localDescription.sdp });
      }).catch((e) => { console.warn('direct offer', e); failed(); });
    }
  }

  async function onPeerOffer(m) {
    const d = direct;
    if (!d || d.offerer || m.from !== d.peer) return;
    await d.pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
    for (const t of d.pc.getTransceivers()) {
      const track = localTrack(t.receiver.track.kind);
      if (track) {
        await t.sender.replaceTrack(track);
        t.sender.setStreams?.(local);
      }
      t.direction = track ? 'sendrecv' : 'recvonly';
    }
    await d.pc.setLocalDescription(await d.pc.createAnswer());
    if (direct !== d) return;
    send({ type: 'peerAnswer', sdp: d.pc.localDescription.sdp });
    for (const c of d.pendingIce.splice(0)) await d.pc.addIceCandidate(c);
    applySilence();
  }

  async function onPeerAnswer(m) {
    const d = direct;
    if (!d || !d.offerer || m.from !== d.peer) return;
    await d.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
    for (const c of d.pendingIce.splice(0)) await d.pc.addIceCandidate(c);
  }

  async function onPeerIce(m) {
    const d = direct;
    if (!d || m.from !== d.peer || !m.candidate) return;
    const c = { candidate: m.candidate, sdpMLineIndex: m.sdpMLineIndex, sdpMid: m.sdpMid ?? undefined };
    if (d.pc.remoteDescription) await d.pc.addIceCandidate(c); else d.pendingIce.push(c);
  }

  // The other's picture fills the page, and the server gets nothing more
  // until the room needs it again.
  function showDirect(d) {
    d.shown = true;
    shownConn = d.pc;
    ui.canvas.srcObject = d.stream;
    playCanvas();
    document.body.classList.add('direct');
    setServerSending(false);
  }

  // A teacher's mute holds on the direct connection too: the silenced
  // side sends no voice, and the other does not play it.
  function applySilence() {
    const d = direct;
    if (!d) return;
    d.stream.getAudioTracks().forEach((t) => { t.enabled = !silenced.has(d.peer); });
    const mic = localTrack('audio');
    const tx = d.pc.getTransceivers().find((t) => t.receiver.track.kind === 'audio');
    if (mic && tx && d.pc.localDescription && d.pc.remoteDescription) {
      tx.sender.replaceTrack(silenced.has(participantId) ? null : mic).catch(() => {});
    }
  }

  async function serverFramesDecoded() {
    let n = 0;
    if (!pc) return n;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') n = r.framesDecoded || 0;
    });
    return n;
  }

  // Back to the MCU: send to the server again at once, and keep showing
  // the direct picture until the server's canvas has moved for a moment
  // (its first frames after a pause can stall in Firefox).
  async function endDirect() {
    const d = direct;
    direct = null;
    if (!d) return;
    switchTimes.push(['mcu', Math.round(performance.now() - gaps.since)]);
    setServerSending(true);
    if (d.shown && pc) {
      const start = await serverFramesDecoded();
      const deadline = Date.now() + 3000;
      while (pc && Date.now() < deadline && (await serverFramesDecoded()) < start + 8) {
        await new Promise((r) => setTimeout(r, 40));
      }
      if (serverStream) ui.canvas.srcObject = serverStream;
      switchTimes.push(['shown', Math.round(performance.now() - gaps.since)]);
      shownConn = null;
      playCanvas();
      setState('Connected');
    }
    document.body.classList.remove('direct');
    clearTimeout(d.dropTimer);
    d.pc.onconnectionstatechange = null;
    // The other may still be waiting for its canvas: it keeps our picture
    // a little longer.
    setTimeout(() => d.pc.close(), 3000);
  }

  function closeDirect() {
    const d = direct;
    direct = null;
    shownConn = null;
    if (!d) return;
    clearTimeout(d.dropTimer);
    d.pc.onconnectionstatechange = null;
    d.pc.close();
    document.body.classList.remove('direct');
  }

  async function onMessage(m) {
    switch (m.type) {
      case 'joined':
        participantId = m.participantId;
        redirects = 0;
        role = m.participants.find((p) => p.id === participantId)?.role || role;
        ui.record.hidden = role !== 'teacher';
        ui.lock.hidden = role !== 'teacher';
        ui.hand.hidden = role === 'teacher';
        ui.chatToggle.hidden = role !== 'teacher';
        ui.chat.hidden = false;
        ui.chatLog.replaceChildren();
        chatSeen.length = 0;
        showChatState(true);
        showLock(m.locked);
        showHands(m.participants);
        setCount(m.participants.length);
        showRoster(m.participants);
        setState('Joining…');
        iceConfig = { iceServers: m.iceServers, policy: m.iceTransportPolicy };
        await startCall(m.iceServers, m.iceTransportPolicy);
        break;
      case 'answer':
        await pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
        for (const c of pendingIce.splice(0)) await pc.addIceCandidate(c);
        await applyTileHint();
        break;
      case 'ice': {
        const c = { candidate: m.candidate, sdpMLineIndex: m.sdpMLineIndex };
        if (pc && pc.remoteDescription) await pc.addIceCandidate(c); else pendingIce.push(c);
        break;
      }
      case 'participants':
        setCount(m.participants.length);
        showHands(m.participants);
        showRoster(m.participants);
        silenced.clear();
        m.participants.filter((p) => p.silenced).forEach((p) => silenced.add(p.id));
        applySilence();
        break;
      case 'mode':
        if (m.mode === 'p2p' && m.peer) startDirect(m.peer, m.offerer);
        else await endDirect();
        break;
      case 'peerOffer':
        await onPeerOffer(m);
        break;
      case 'peerAnswer':
        await onPeerAnswer(m);
        break;
      case 'peerIce':
        await onPeerIce(m);
        break;
      case 'locked':
        showLock(m.locked);
        break;
      case 'chat':
        showChat(m);
        break;
      case 'chatState':
        showChatState(m.enabled);
        break;
      case 'layout':
        // Teachers pick the room's layout; everyone else just sees it.
        if (role === 'teacher') {
          ui.layout.replaceChildren(...m.available.map((n) => new Option(n, n, false, n === m.name)));
          ui.layout.hidden = false;
        }
        break;
      case 'recording':
        recording = m.active;
        ui.rec.hidden = !recording;
        ui.record.textContent = recording ? 'Stop recording' : 'Record';
        ui.record.classList.toggle('off', recording);
        break;
      case 'tile':
        tileHint = m;
        await applyTileHint();
        break;
      case 'quality':
        showQuality(m.tier, m.estimate);
        break;
      case 'redirect':
        redirect(m);
        break;
      case 'left':
        if (m.reason === 'you were removed from the room') {
          // A teacher's removal: coming straight back would undo it.
          fatal = true;
          teardown();
          setState('You were removed from the room');
        } else if (!leaving) {
          reconnect(m.reason);
        }
        break;
      case 'error':
        notice(m.message);
        lastError = { code: m.code, message: m.message };
        // Retrying cannot fix these; nor a refused join (bad, locked, removed).
        if (['bad-offer', 'unsupported-codec', 'unauthorized'].includes(m.code)
            || (['forbidden', 'bad-message'].includes(m.code) && !participantId)) {
          fatal = true;
          setState('Cannot join: ' + m.message);
          teardown();
        }
        break;
      default:
        break;
    }
  }

  function showLock(on) {
    locked = on;
    ui.lock.textContent = on ? 'Unlock room' : 'Lock room';
    ui.lock.classList.toggle('off', on);
  }

  // Raised hands, in the order they went up, and this participant's own.
  function showHands(list) {
    hands = list.filter((p) => p.hand).sort((a, b) => a.hand - b.hand)
      .map((p) => ({ id: p.id, name: p.name, place: p.hand }));
    handUp = hands.some((h) => h.id === participantId);
    ui.hand.textContent = handUp ? 'Lower hand' : 'Raise hand';
    ui.hand.classList.toggle('off', handUp);
  }

  // A chat message, always as text: the sender's name and words never
  // become markup.
  function showChat(m) {
    chatSeen.push({ from: m.from, name: m.name, text: m.text, at: m.at });
    const li = document.createElement('li');
    const time = document.createElement('time');
    time.dateTime = m.at;
    time.textContent = new Date(m.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const who = document.createElement('b');
    who.textContent = m.name;
    const text = document.createElement('span');
    text.textContent = m.text;
    li.append(time, ' ', who, ' ', text);
    if (m.from === participantId) li.classList.add('mine');
    ui.chatLog.append(li);
    while (ui.chatLog.children.length > 200) ui.chatLog.firstElementChild.remove();
    ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
  }

  function showChatState(enabled) {
    chatOn = enabled;
    const mayWrite = enabled || role === 'teacher';
    ui.chatText.disabled = !mayWrite;
    ui.chatSend.disabled = !mayWrite;
    ui.chatText.placeholder = mayWrite ? 'Message everyone' : 'The teacher turned chat off';
    ui.chatToggle.textContent = enabled ? 'Chat off' : 'Chat on';
    ui.chatToggle.classList.toggle('off', !enabled);
  }

  function button(text, onClick) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = text;
    b.addEventListener('click', onClick);
    return b;
  }

  // Teachers see who is in the room, raised hands first in the order they
  // went up, with lower, mute and remove buttons.
  function showRoster(list) {
    ui.roster.hidden = role !== 'teacher';
    if (role !== 'teacher') return;
    const others = list.filter((p) => p.id !== participantId)
      .sort((a, b) => (a.hand ?? Infinity) - (b.hand ?? Infinity));
    const items = others.map((p) => {
      const li = document.createElement('li');
      li.textContent = (p.hand ? `✋ ${p.hand} · ` : '') + p.name + (p.role === 'teacher' ? ' (teacher)' : '');
      if (p.hand) {
        li.classList.add('hand');
        li.append(' ', button('Lower', () => send({ type: 'lowerHand', participant: p.id })));
      }
      if (p.role !== 'teacher') {
        li.append(' ', button(p.silenced ? 'Unmute' : 'Mute',
          () => send({ type: 'muteParticipant', participant: p.id, muted: !p.silenced })));
        li.append(' ', button('Remove', () => send({ type: 'remove', participant: p.id })));
      }
      return li;
    });
    if (hands.length > 1) {
      const all = document.createElement('li');
      all.append(button('Lower all hands', () => send({ type: 'lowerHand' })));
      items.push(all);
    }
    ui.roster.replaceChildren(...items);
  }

  function teardown() {
    clearTimeout(disconnectTimer);
    closeDirect();
    silenced.clear();
    if (pc) { pc.onconnectionstatechange = null; pc.close(); pc = null; }
    videoTx = null;
    audioTx = null;
    serverStream = null;
    participantId = null;
    pendingIce = [];
    if (ws) { ws.onclose = null; ws.onmessage = null; ws.close(); ws = null; }
    recording = false;
    ui.rec.hidden = true;
    showHands([]);
    showQuality('high', null);
    // The next call negotiates a fresh screen m-line.
    stopShare();
    screenTx = null;
    ui.share.disabled = true;
  }

  function reconnect(reason) {
    if (leaving || fatal) return;
    teardown();
    retries += 1;
    const delay = Math.min(10000, 500 * 2 ** Math.min(retries, 5));
    setState(`Reconnecting… (${reason})`);
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, delay);
  }

  // The signaling socket: this page's server, or the node of a cluster it
  // sent us to (`redirect`). A lost connection goes back through this
  // page's server, which knows where the room lives now.
  const entryUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  let signalingUrl = null;

  function connect() {
    if (leaving) return;
    setState(retries ? 'Reconnecting…' : 'Connecting…');
    ws = new WebSocket(signalingUrl || entryUrl);
    ws.onopen = () => send({
      type: 'join', room, ...(name ? { name } : {}), ...(token ? { token } : {}),
      ...(wantCodec ? { codec: wantCodec } : {}), ...(askedRole ? { role: askedRole } : {}),
      ...(relay ? { relay: true } : {}), ...(p2p ? { p2p: true } : {}),
    });
    ws.onmessage = (e) => { onMessage(JSON.parse(e.data)).catch((err) => console.error(err)); };
    ws.onclose = () => { signalingUrl = null; reconnect('lost the connection to the server'); };
  }

  // The room lives on (or moves to) another node: go there at once.
  function redirect(m) {
    if (leaving || fatal) return;
    teardown();
    signalingUrl = m.url;
    redirects += 1;
    redirected += 1;
    if (redirects > 5) {
      // Nodes that keep sending us on: back off as after a lost connection.
      signalingUrl = null;
      reconnect('the cluster keeps sending the room elsewhere');
      return;
    }
    setState(m.reason === 'draining' ? 'Moving to another server…' : 'Connecting…');
    clearTimeout(reconnectTimer);
    connect();
  }

  async function start() {
    ui.prompt.hidden = true;
    localStorage.setItem('tessera.name', name);
    leaving = false;
    fatal = false;
    if (!local) {
      local = await getMedia();
      if (local.getVideoTracks().length) {
        ui.preview.srcObject = local;
        ui.preview.classList.add('live');
      }
    }
    ui.mic.disabled = !local.getAudioTracks().length;
    ui.cam.disabled = !local.getVideoTracks().length;
    ui.leave.disabled = false;
    connect();
  }

  function leave() {
    leaving = true;
    clearTimeout(reconnectTimer);
    send({ type: 'leave' });
    teardown();
    setState('You left the room');
    setCount(0);
    ui.leave.disabled = true;
    ui.title.textContent = 'Join again';
    ui.prompt.hidden = false;
  }

  function toggle(kind, button, onText, offText) {
    const track = local && (kind === 'audio' ? local.getAudioTracks()[0] : local.getVideoTracks()[0]);
    if (!track) return;
    track.enabled = !track.enabled;
    button.textContent = track.enabled ? onText : offText;
    button.classList.toggle('off', !track.enabled);
  }

  ui.mic.addEventListener('click', () => {
    toggle('audio', ui.mic, 'Mute mic', 'Unmute mic');
    send({ type: 'mute', muted: !local.getAudioTracks()[0]?.enabled });
  });
  ui.share.hidden = !canShare;
  ui.record.hidden = role !== 'teacher';
  ui.lock.addEventListener('click', () => send({ type: 'lock', locked: !locked }));
  ui.hand.addEventListener('click', () => send({ type: 'hand', raised: !handUp }));
  ui.chatToggle.addEventListener('click', () => send({ type: 'setChat', enabled: !chatOn }));
  ui.chatForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = ui.chatText.value;
    if (!text.trim()) return;
    send({ type: 'chat', text });
    ui.chatText.value = '';
  });
  ui.record.addEventListener('click', () => send({ type: 'record', on: !recording }));
  ui.share.addEventListener('click', () => (screenTrack ? stopShare() : startShare()));
  ui.cam.addEventListener('click', () => toggle('video', ui.cam, 'Stop camera', 'Start camera'));
  ui.play.addEventListener('click', playCanvas);
  ui.layout.addEventListener('change', () => send({ type: 'setLayout', layout: ui.layout.value }));
  ui.leave.addEventListener('click', leave);
  ui.form.addEventListener('submit', (e) => {
    e.preventDefault();
    name = ui.name.value.trim();
    if (name) start();
  });

  async function stats() {
    const out = {
      participantId, participants, state: pc ? pc.connectionState : 'new',
      framesDecoded: 0, frameWidth: 0, frameHeight: 0, codec: null, audioEnergy: 0,
      audioSamples: 0, concealedSamples: 0,
      sentBytes: 0, sentFrameWidth: 0, sentFrameHeight: 0, tile: tileHint,
      sharing: !!screenTrack, screenBytes: 0, recording, hand: handUp, hands,
      chat: { enabled: chatOn, messages: chatSeen.slice() }, lastError,
      localCandidateType: null, remoteCandidateType: null, tier, downlinkEstimate,
      qualityNotice: ui.quality.hidden ? '' : ui.quality.textContent,
      mode: direct ? 'p2p' : 'mcu', direct: null,
      frameGapMs: Math.round(gaps.frameMs), audioGapMs: Math.round(gaps.audioMs),
      frameGapEndMs: gaps.frameEnd ?? null, switchTimes,
      signaling: signalingUrl || entryUrl, redirects: redirected,
    };
    if (direct) out.direct = await directStats(direct);
    if (!pc) return out;
    const report = await pc.getStats();
    let codecId = null;
    report.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        out.framesDecoded = r.framesDecoded || 0;
        out.frameWidth = r.frameWidth || 0;
        out.frameHeight = r.frameHeight || 0;
        codecId = r.codecId;
      } else if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        out.audioEnergy = r.totalAudioEnergy || 0;
        out.audioSamples = r.totalSamplesReceived || 0;
        out.concealedSamples = r.concealedSamples || 0;
      } else if (r.type === 'outbound-rtp' && r.kind === 'video' && screenTx && r.mid === screenTx.mid) {
        out.screenBytes += r.bytesSent || 0;
      } else if (r.type === 'outbound-rtp' && r.kind === 'video') {
        out.sentBytes += r.bytesSent || 0;
        out.sentFrameWidth = r.frameWidth || out.sentFrameWidth;
        out.sentFrameHeight = r.frameHeight || out.sentFrameHeight;
      }
    });
    // The candidate pair in use: `relay` on our side means through TURN.
    report.forEach((r) => {
      if (r.type !== 'transport' || !r.selectedCandidatePairId) return;
      const pair = report.get(r.selectedCandidatePairId);
      out.localCandidateType = report.get(pair?.localCandidateId)?.candidateType || null;
      out.remoteCandidateType = report.get(pair?.remoteCandidateId)?.candidateType || null;
    });
    const codec = codecId && report.get(codecId);
    if (codec) out.codec = codec.mimeType.split('/')[1].toLowerCase();
    return out;
  }

  // What the direct connection carries: the other's picture and voice.
  async function directStats(d) {
    const out = { state: d.pc.connectionState, shown: d.shown, framesDecoded: 0, frameWidth: 0,
      audioSamples: 0, concealedSamples: 0, audioEnergy: 0, audioBytes: 0, sentBytes: 0,
      localCandidateType: null, remoteCandidateType: null, localPort: null, remotePort: null,
      localPorts: [] };
    const report = await d.pc.getStats();
    report.forEach((r) => {
      if (r.type === 'local-candidate' && r.port && !out.localPorts.includes(r.port)) {
        // Every port this browser gathered: with two interfaces each side
        // may send over a different valid pair, each ending at the other.
        out.localPorts.push(r.port);
      } else if (r.type === 'inbound-rtp' && r.kind === 'video') {
        out.framesDecoded = r.framesDecoded || 0;
        out.frameWidth = r.frameWidth || 0;
      } else if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        out.audioSamples = r.totalSamplesReceived || 0;
        out.concealedSamples = r.concealedSamples || 0;
        out.audioEnergy = r.totalAudioEnergy || 0;
        out.audioBytes = r.bytesReceived || 0;
      } else if (r.type === 'outbound-rtp') {
        out.sentBytes += r.bytesSent || 0;
      } else if ((r.type === 'transport' && r.selectedCandidatePairId)
          || (r.type === 'candidate-pair' && r.selected)) {
        // Firefox marks the pair in use `selected` and has no transport stats.
        const pair = r.type === 'transport' ? report.get(r.selectedCandidatePairId) : r;
        const remote = report.get(pair?.remoteCandidateId);
        out.localCandidateType = report.get(pair?.localCandidateId)?.candidateType || null;
        out.localPort = report.get(pair?.localCandidateId)?.port || null;
        out.remoteCandidateType = remote?.candidateType || null;
        out.remotePort = remote?.port || null;
      }
    });
    return out;
  }

  // The longest the picture and the sound shown went without anything
  // new, from getStats of the connection they come from (the direct one
  // or the server's): decoded frames, and samples received not concealed.
  const gaps = { frameAt: 0, audioAt: 0, frameMs: 0, audioMs: 0, seen: new Map(),
    since: performance.now(), frameEnd: null };
  async function watchGaps() {
    const conn = shownConn || pc;
    if (!conn) { setTimeout(watchGaps, 100); return; }
    let frames = 0; let heard = 0;
    try {
      (await conn.getStats()).forEach((r) => {
        if (r.type !== 'inbound-rtp') return;
        if (r.kind === 'video') frames = r.framesDecoded || 0;
        if (r.kind === 'audio') heard = (r.totalSamplesReceived || 0) - (r.concealedSamples || 0);
      });
    } catch (e) { /* closed meanwhile */ }
    const now = performance.now();
    const last = gaps.seen.get(conn) || { frames: 0, heard: 0 };
    if (frames > last.frames) {
      if (gaps.frameAt && now - gaps.frameAt > gaps.frameMs) gaps.frameEnd = Math.round(now - gaps.since);
      if (gaps.frameAt) gaps.frameMs = Math.max(gaps.frameMs, now - gaps.frameAt);
      gaps.frameAt = now;
    }
    if (heard > last.heard) {
      if (gaps.audioAt) gaps.audioMs = Math.max(gaps.audioMs, now - gaps.audioAt);
      gaps.audioAt = now;
    }
    gaps.seen = new Map([[conn, { frames, heard }]]);
    setTimeout(watchGaps, 100);
  }
  // Watched only once asked for (resetGaps): polling getStats ten times a
  // second costs a busy machine.
  let watching = false;
  const resetGaps = () => {
    if (!watching) { watching = true; watchGaps(); }
    Object.assign(gaps, { frameMs: 0, audioMs: 0, frameAt: 0, audioAt: 0, since: performance.now(), frameEnd: null });
    switchTimes.length = 0;
  };

  window.tessera = { get pc() { return pc; }, stats, leave, resetGaps };

  document.title = `${room} · Tessera`;
  ui.name.value = name;
  if (!room) {
    setState('No room in the address: open /r/<room>');
  } else if ((autojoin && name) || token) {
    // A token names the participant: no name to ask for.
    start();
  } else {
    ui.title.textContent = `Join ${room}`;
    ui.prompt.hidden = false;
    ui.name.focus();
  }
})();
