// The denoise page: build the settings form from the server's schema (the CLI's own options), upload, poll the
// job, show each image's progress and a before/after comparison, offer the downloads.
"use strict";

const form = document.getElementById("upload");
const message = document.getElementById("message");
const images = document.getElementById("images");
let schema = null;

async function loadSchema() {
  const response = await fetch("/api/settings");
  schema = await response.json();
  showSettings();
}

function method() {
  return form.querySelector("input[name=command]:checked").value;
}

function showSettings() {
  const box = document.getElementById("settings");
  box.textContent = "";
  for (const field of schema.methods[method()]) {
    const label = document.createElement("label");
    label.className = "field";
    label.title = field.help;
    label.append(field.label + " ");
    let input;
    if (field.kind === "choice") {
      input = document.createElement("select");
      for (const choice of field.choices) {
        const option = document.createElement("option");
        option.value = option.textContent = choice;
        option.selected = choice === field.default;
        input.append(option);
      }
    } else if (field.kind === "flag") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.value = "true";
      input.checked = Boolean(field.default);
    } else {
      input = document.createElement("input");
      input.value = field.default === null ? "" : String(field.default);
      input.size = 8;
    }
    input.name = field.name;
    label.append(input);
    box.append(label);
  }
}

function chosenFiles(list) {
  document.getElementById("chosen").textContent =
    list.length ? Array.from(list, (f) => f.name).join(", ") : "";
}

async function submit(event) {
  event.preventDefault();
  message.textContent = "";
  if (!images.files.length) {
    message.textContent = "Choose one or more images first.";
    return;
  }
  const data = new FormData(form);
  data.set("command", method());
  document.getElementById("start").disabled = true;
  try {
    const response = await fetch("/api/jobs", { method: "POST", body: data });
    const answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
    if (!response.ok) {
      message.textContent = answer.error;
      return;
    }
    follow(answer.id);
  } catch (error) {
    message.textContent = "The server did not answer: is `denoise serve` still running?";
  } finally {
    document.getElementById("start").disabled = false;
  }
}

function follow(id) {
  const results = document.getElementById("results");
  const cards = [];
  const tick = async () => {
    const response = await fetch(`/api/jobs/${id}`);
    if (!response.ok) {
      message.textContent = "The job is gone (results are deleted after a while).";
      return;
    }
    const job = await response.json();
    job.images.forEach((image, index) => {
      if (!cards[index]) {
        cards[index] = document.getElementById("result-template").content.firstElementChild.cloneNode(true);
        cards[index].querySelector(".name").textContent = image.name;
        results.prepend(cards[index]);
      }
      update(cards[index], id, index, image);
    });
    if (job.status === "done") {
      document.getElementById("zip").href = `/api/jobs/${id}/results.zip`;
      document.getElementById("report").href = `/api/jobs/${id}/report.json`;
      document.getElementById("all").hidden = false;
    } else {
      setTimeout(tick, 400);
    }
  };
  tick();
}

function update(card, id, index, image) {
  const fill = card.querySelector(".fill");
  const state = card.querySelector(".state");
  const p = image.progress;
  if (image.status === "done") {
    fill.style.width = "100%";
    const scores = image.psnr_out == null ? "" :
      ` · PSNR ${image.psnr_in.toFixed(2)} → ${image.psnr_out.toFixed(2)} dB, SSIM ${image.ssim_in.toFixed(3)} → ${image.ssim_out.toFixed(3)}`;
    state.textContent = `done in ${image.seconds.toFixed(1)} s${scores}` + (image.notice ? ` · ${image.notice}` : "");
    state.className = "state done";
    showComparison(card, id, index);
  } else if (image.status === "failed") {
    fill.style.width = "100%";
    fill.style.background = "#b3261e";
    state.textContent = image.error;
    state.className = "state error";
  } else {
    const share = p.total ? p.done / p.total : 0;
    fill.style.width = `${Math.round(100 * share)}%`;
    state.textContent = p.total ? `${p.phase}: ${p.done} / ${p.total}` : image.status;
  }
}

function showComparison(card, id, index) {
  const compare = card.querySelector(".compare");
  if (!compare.hidden) return;
  compare.hidden = false;
  const base = `/api/jobs/${id}/images/${index}`;
  card.querySelector(".before").src = `${base}/input?preview=1`;
  card.querySelector(".after").src = `${base}/output?preview=1`;
  card.querySelector(".download").href = `${base}/output`;
  const clip = card.querySelector(".before-clip");
  const viewport = card.querySelector(".viewport");
  const after = card.querySelector(".after");
  const before = card.querySelector(".before");
  const fit = () => { before.style.width = `${after.clientWidth}px`; };
  after.addEventListener("load", fit);
  window.addEventListener("resize", fit);
  card.querySelector(".slider").addEventListener("input", (event) => {
    clip.style.right = `${100 - event.target.value}%`;
  });
  card.querySelector(".actual").addEventListener("change", (event) => {
    viewport.classList.toggle("actual", event.target.checked);
    fit();
  });
}

const drop = document.getElementById("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  images.files = event.dataTransfer.files;
  chosenFiles(images.files);
});
images.addEventListener("change", () => chosenFiles(images.files));
form.addEventListener("change", (event) => { if (event.target.name === "command") showSettings(); });
form.addEventListener("submit", submit);
loadSchema();
