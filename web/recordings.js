// Recorded lessons: lists recordings (GET /api/recordings) and plays one
// with its chapter list, and its chat and raised hands shown as the video
// reaches each (always as text). With an admin key configured, asks for it once
// (kept for this tab only) and fetches with it.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  let key = sessionStorage.getItem('tessera.adminKey') || '';

  const headers = () => (key ? { Authorization: 'Bearer ' + key } : {});
  const api = (path) => fetch('/api' + path, { headers: headers() });
  const seconds = (ms) => {
    const s = Math.round((ms || 0) / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  };

  async function load() {
    const res = await api('/recordings');
    if (res.status === 401 || res.status === 403) {
      $('status').textContent = (await res.json()).error;
      $('key-form').hidden = false;
      return;
    }
    const list = await res.json();
    $('status').textContent = list.length ? '' : 'No recordings yet.';
    $('list').replaceChildren(...list.map((m) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = `${m.room} · ${new Date(m.started_at).toLocaleString()} · ${m.duration_ms ? seconds(m.duration_ms) : 'recording…'}`;
      b.disabled = !m.export;
      b.title = m.export ? 'Play' : (m.error || 'Not exported yet');
      b.addEventListener('click', () => play(m));
      li.append(b);
      return li;
    }));
  }

  async function play(m) {
    $('player').hidden = false;
    $('title').textContent = `${m.room}, ${new Date(m.started_at).toLocaleString()}`;
    const video = $('video');
    if (key) {
      // A <video> cannot send the key: ask for a playback link (the media
      // URL with a short-lived access token for this one recording), so the
      // browser streams and seeks with Range requests as usual.
      const res = await fetch(`/api/recordings/${encodeURIComponent(m.id)}/link`, { method: 'POST', headers: headers() });
      const link = await res.json();
      if (!res.ok) { $('status').textContent = link.error; return; }
      video.src = link.url;
    } else {
      video.src = `/api/recordings/${encodeURIComponent(m.id)}/media`;
    }
    const chapters = m.events.filter((e) => e.kind === 'layout' || (e.kind === 'speaker' && e.participant));
    const names = Object.fromEntries(m.events.filter((e) => e.kind === 'joined').map((e) => [e.participant, e.name]));
    $('chapters').replaceChildren(...chapters.map((e) => {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = '#';
      a.textContent = `${seconds(e.at_ms)} ${e.kind === 'layout' ? 'Layout: ' + e.name : (names[e.participant] || e.participant) + ' speaking'}`;
      a.addEventListener('click', (ev) => { ev.preventDefault(); video.currentTime = e.at_ms / 1000; video.play(); });
      li.append(a);
      return li;
    }));
    showChat(m.events.filter((e) => e.kind === 'chat' || e.kind === 'hand'), names, video);
  }

  // The lesson's chat and raised hands beside the video: each appears when
  // the video reaches the moment it happened; clicking its time seeks there.
  let replay = null;
  function showChat(messages, names, video) {
    if (replay) {
      video.removeEventListener('timeupdate', replay);
      video.removeEventListener('seeked', replay);
    }
    $('chat-none').hidden = messages.length > 0;
    const items = messages.map((e) => {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = '#';
      a.textContent = seconds(e.at_ms);
      a.addEventListener('click', (ev) => { ev.preventDefault(); video.currentTime = e.at_ms / 1000; });
      const who = document.createElement('b');
      who.textContent = e.kind === 'chat' ? e.name : '✋ ' + (names[e.participant] || e.participant);
      const text = document.createElement('span');
      if (e.kind === 'chat') {
        text.textContent = e.text;
      } else {
        li.className = 'hand';
        text.textContent = e.raised ? 'raised a hand' : (e.by ? 'hand lowered by the teacher' : 'lowered the hand');
      }
      li.append(a, ' ', who, ' ', text);
      li.dataset.atMs = String(e.at_ms);
      return li;
    });
    $('chat-replay').replaceChildren(...items);
    replay = () => {
      const now = video.currentTime * 1000;
      for (const li of items) li.hidden = Number(li.dataset.atMs) > now;
    };
    replay();
    video.addEventListener('timeupdate', replay);
    video.addEventListener('seeked', replay);
  }

  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    key = $('key').value;
    sessionStorage.setItem('tessera.adminKey', key);
    $('key-form').hidden = true;
    load().catch((err) => { $('status').textContent = String(err); });
  });
  load().catch((err) => { $('status').textContent = String(err); });
})();
