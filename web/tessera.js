// Tessera room page: joins a room over the signaling WebSocket, sends the
// camera and microphone up, and plays the room's canvas and mix.
// Protocol: docs/protocol.md. A join link carries ?token=... (kept for this
// tab, then taken out of the address bar). Automation:
// ?name=..&codec=vp8|h264&autojoin=1, and window.tessera.{pc, stats(), leave()}.
// stats() reports, among the figures, the quality tier the server sends
// (`tier`) and the notice shown for it (`qualityNotice`).
// ?relay=1 sends and receives media only through the TURN relay.
'use strict';
(() => {
  const params = new URLSearchParams(location.search);
  const room = decodeURIComponent(location.pathname.replace(/^\/r\//, '').replace(/\/+$/, ''));
  const wantCodec = ['vp8', 'h264'].includes(params.get('codec')) ? params.get('codec') : null;
  const autojoin = params.get('autojoin') === '1';
  const relay = params.get('relay') === '1';
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
    lock: $('lock'), roster: $('roster'), quality: $('quality-notice'),
  };
  const canShare = !!navigator.mediaDevices?.getDisplayMedia;

  let name = params.get('name') || localStorage.getItem('tessera.name') || '';
  let local = null;          // MediaStream from the camera and microphone
  let ws = null;
  let pc = null;
  let videoTx = null;
  let screenTx = null;       // send-only transceiver for a shared screen
  let screenTrack = null;
  let recording = false;
  let tileHint = null;
  let participants = 0;
  let participantId = null;
  let role = askedRole;      // the server's word once joined (a token's role)
  let locked = false;
  let leaving = false;
  let fatal = false;         // an error that retrying cannot fix
  let retries = 0;
  let reconnectTimer = null;
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
    pc.addTransceiver(audio || 'audio', { direction: audio ? 'sendrecv' : 'recvonly', streams: [local] });
    videoTx = pc.addTransceiver(video || 'video', { direction: video ? 'sendrecv' : 'recvonly', streams: [local] });
    preferCodec(videoTx, wantCodec);
    // Negotiated up front and idle until the user shares: sharing is then
    // replaceTrack, with no renegotiation.
    screenTx = canShare ? pc.addTransceiver('video', { direction: 'sendonly' }) : null;
    if (screenTx) preferCodec(screenTx, wantCodec);
    const remote = new MediaStream();
    pc.ontrack = (e) => {
      remote.addTrack(e.track);
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

  async function onMessage(m) {
    switch (m.type) {
      case 'joined':
        participantId = m.participantId;
        role = m.participants.find((p) => p.id === participantId)?.role || role;
        ui.record.hidden = role !== 'teacher';
        ui.lock.hidden = role !== 'teacher';
        showLock(m.locked);
        setCount(m.participants.length);
        showRoster(m.participants);
        setState('Joining…');
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
        showRoster(m.participants);
        break;
      case 'locked':
        showLock(m.locked);
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
      case 'left':
        if (!leaving) reconnect(m.reason);
        break;
      case 'error':
        notice(m.message);
        // Retrying cannot fix these; nor a refused join (locked, removed).
        if (['bad-offer', 'unsupported-codec', 'bad-message', 'unauthorized'].includes(m.code)
            || (m.code === 'forbidden' && !participantId)) {
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

  // Teachers see who is in the room, with mute and remove buttons.
  function showRoster(list) {
    ui.roster.hidden = role !== 'teacher';
    if (role !== 'teacher') return;
    ui.roster.replaceChildren(...list.filter((p) => p.id !== participantId).map((p) => {
      const li = document.createElement('li');
      li.textContent = p.name + (p.role === 'teacher' ? ' (teacher)' : '');
      if (p.role !== 'teacher') {
        const mute = document.createElement('button');
        mute.type = 'button';
        mute.textContent = p.silenced ? 'Unmute' : 'Mute';
        mute.addEventListener('click', () => send({ type: 'muteParticipant', participant: p.id, muted: !p.silenced }));
        const remove = document.createElement('button');
        remove.type = 'button';
        remove.textContent = 'Remove';
        remove.addEventListener('click', () => send({ type: 'remove', participant: p.id }));
        li.append(' ', mute, ' ', remove);
      }
      return li;
    }));
  }

  function teardown() {
    clearTimeout(disconnectTimer);
    if (pc) { pc.onconnectionstatechange = null; pc.close(); pc = null; }
    videoTx = null;
    participantId = null;
    pendingIce = [];
    if (ws) { ws.onclose = null; ws.onmessage = null; ws.close(); ws = null; }
    recording = false;
    ui.rec.hidden = true;
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

  function connect() {
    if (leaving) return;
    setState(retries ? 'Reconnecting…' : 'Connecting…');
    ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
    ws.onopen = () => send({
      type: 'join', room, ...(name ? { name } : {}), ...(token ? { token } : {}),
      ...(wantCodec ? { codec: wantCodec } : {}), ...(askedRole ? { role: askedRole } : {}),
      ...(relay ? { relay: true } : {}),
    });
    ws.onmessage = (e) => { onMessage(JSON.parse(e.data)).catch((err) => console.error(err)); };
    ws.onclose = () => reconnect('lost the connection to the server');
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
      sharing: !!screenTrack, screenBytes: 0, recording,
      localCandidateType: null, remoteCandidateType: null, tier, downlinkEstimate,
      qualityNotice: ui.quality.hidden ? '' : ui.quality.textContent,
    };
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

  window.tessera = { get pc() { return pc; }, stats, leave };

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
