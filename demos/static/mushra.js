// MUSHRA listening test (ITU-R BS.1534 style) for the static neuralcodec demo site.
// The trial list is embedded in the page (#mushra-config) so that the page works from disk.
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("mushra-config").textContent);
  var results = { format: "neuralcodec-mushra", version: 1, listener: "", started: null, finished: null,
                  user_agent: navigator.userAgent, site: config.site, trials: [] };
  var trialIndex = -1;
  var current = null;     // {trial, stimuli: [{condition, audio, played, plays, slider}], reference, started}
  var playing = null;     // the Audio element playing now
  var el = function (id) { return document.getElementById(id); };

  function shuffle(list) {
    for (var i = list.length - 1; i > 0; i--) {
      var j = Math.floor(Math.random() * (i + 1));
      var t = list[i]; list[i] = list[j]; list[j] = t;
    }
    return list;
  }

  function stop() {
    if (playing) { playing.pause(); playing.currentTime = 0; playing = null; }
    document.querySelectorAll("button.playing").forEach(function (b) { b.classList.remove("playing"); });
  }

  function play(audio, button) {
    stop();
    playing = audio;
    button.classList.add("playing");
    audio.currentTime = 0;
    var started = audio.play();
    if (started && started.catch) {
      started.catch(function (err) { el("status").textContent = "cannot play this file: " + err; });
    }
  }

  function letter(i) { return String.fromCharCode(65 + i); }

  function unplayed() {
    return current.stimuli.filter(function (s) { return !s.played; }).length;
  }

  function updateStatus() {
    var left = unplayed();
    var last = trialIndex === config.trials.length - 1;
    el("next").disabled = left > 0;
    el("next").textContent = last ? "Finish" : "Next trial";
    el("status").textContent = left > 0
      ? "Play every stimulus before moving on (" + left + " not played yet)."
      : "All stimuli played: adjust the ratings, then continue.";
  }

  function showTrial(index) {
    stop();
    trialIndex = index;
    var trial = config.trials[index];
    el("progress").value = index;
    el("progress-text").textContent = "Trial " + (index + 1) + " of " + config.trials.length;
    el("trial-title").textContent = "Trial " + (index + 1);
    var reference = new Audio(trial.reference);
    reference.preload = "auto";
    reference.addEventListener("ended", stop);
    el("play-reference").onclick = function () { play(reference, el("play-reference")); };
    var box = el("stimuli");
    box.innerHTML = "";
    var stimuli = shuffle(trial.stimuli.map(function (s) {
      return { condition: s.condition, file: s.file, played: false, plays: 0 };
    }));
    stimuli.forEach(function (s, i) {
      var col = document.createElement("div");
      col.className = "stimulus";
      col.dataset.position = String(i);
      var value = document.createElement("output");
      value.className = "value";
      value.textContent = "0";
      var slider = document.createElement("input");
      slider.type = "range"; slider.min = "0"; slider.max = "100"; slider.step = "1"; slider.value = "0";
      slider.className = "rating";
      slider.disabled = true;
      slider.setAttribute("aria-label", "rating of stimulus " + letter(i));
      slider.addEventListener("input", function () { value.textContent = slider.value; });
      var button = document.createElement("button");
      button.type = "button";
      button.className = "play";
      button.textContent = letter(i);
      var audio = new Audio(s.file);
      audio.preload = "auto";
      audio.addEventListener("playing", function () {
        s.plays += 1;
        if (!s.played) { s.played = true; slider.disabled = false; col.classList.add("played"); updateStatus(); }
      });
      audio.addEventListener("ended", stop);
      button.addEventListener("click", function () { play(audio, button); });
      s.slider = slider;
      col.appendChild(value); col.appendChild(slider); col.appendChild(button);
      box.appendChild(col);
    });
    current = { trial: trial, stimuli: stimuli, started: new Date().toISOString() };
    updateStatus();
  }

  function finishTrial() {
    if (unplayed() > 0) { updateStatus(); return; }
    stop();
    var ratings = {}, plays = {};
    current.stimuli.forEach(function (s) { ratings[s.condition] = Number(s.slider.value); plays[s.condition] = s.plays; });
    results.trials.push({ id: current.trial.id, model: current.trial.model, item: current.trial.item,
                          order: current.stimuli.map(function (s) { return s.condition; }),
                          ratings: ratings, plays: plays, started: current.started,
                          finished: new Date().toISOString() });
    if (trialIndex + 1 < config.trials.length) {
      showTrial(trialIndex + 1);
    } else {
      finishTest();
    }
  }

  function toCsv() {
    var quote = function (text) { return '"' + String(text).replace(/"/g, '""') + '"'; };
    var lines = ["listener,trial,model,item,position,condition,score,plays"];
    results.trials.forEach(function (t) {
      t.order.forEach(function (condition, position) {
        lines.push([quote(results.listener), quote(t.id), quote(t.model), quote(t.item), position,
                    quote(condition), t.ratings[condition], t.plays[condition]].join(","));
      });
    });
    return lines.join("\n") + "\n";
  }

  function download(name, text, type) {
    var url = URL.createObjectURL(new Blob([text], { type: type }));
    var a = document.createElement("a");
    a.href = url; a.download = name;
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(url); a.remove(); }, 1000);
  }

  function baseName() {
    var who = results.listener.replace(/[^A-Za-z0-9_-]+/g, "_") || "listener";
    return "mushra-" + who + "-" + results.finished.replace(/[^0-9]/g, "").slice(0, 14);
  }

  function finishTest() {
    results.finished = new Date().toISOString();
    el("progress").value = config.trials.length;
    el("trial").hidden = true;
    el("done").hidden = false;
    el("summary").textContent = JSON.stringify(results, null, 1);
  }

  el("start-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var name = el("listener").value.trim();
    if (!name) { el("listener").focus(); return; }
    results.listener = name;
    results.started = new Date().toISOString();
    el("intro").hidden = true;
    el("trial").hidden = false;
    showTrial(0);
  });
  el("stop").addEventListener("click", stop);
  el("next").addEventListener("click", finishTrial);
  el("download-json").addEventListener("click", function () {
    download(baseName() + ".json", JSON.stringify(results, null, 1) + "\n", "application/json");
  });
  el("download-csv").addEventListener("click", function () {
    download(baseName() + ".csv", toCsv(), "text/csv");
  });
  window.mushraResults = function () { return JSON.parse(JSON.stringify(results)); };
})();
