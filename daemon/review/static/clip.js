// The clip page's polygon tool and frame slider (no inline script: the page's CSP allows
// only files served from here).
//
// Points are clicked on the preview picture and kept as pixels of the picture as the
// viewer sees it (the SVG overlay's viewBox is its size), so an area means the same on
// every frame and to the daemon (a Region with that reference size). A finished area
// becomes a hidden `area` field "x1,y1,x2,y2,..."; a change event then lets htmx fetch the
// preview masked with it.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const MIN_POINTS = 3;

  function start() {
    const draw = document.getElementById("draw");
    const areas = document.getElementById("areas");
    if (!draw || !areas) {
      return;
    }
    const width = Number(draw.dataset.width);
    const height = Number(draw.dataset.height);
    let points = []; // the area being drawn

    function changed() {
      areas.dispatchEvent(new Event("change", { bubbles: true }));
    }

    function shape(name, attributes) {
      const element = document.createElementNS(SVG, name);
      for (const [key, value] of Object.entries(attributes)) {
        element.setAttribute(key, value);
      }
      draw.appendChild(element);
    }

    function redraw() {
      draw.replaceChildren();
      const finished = areas.querySelectorAll("input[name=area]");
      for (const input of finished) {
        shape("polygon", { class: "area", points: pairs(input.value) });
      }
      if (points.length) {
        shape("polyline", { class: "drawing", points: points.map((p) => p.join(",")).join(" ") });
        for (const [x, y] of points) {
          shape("circle", { class: "point", cx: x, cy: y, r: Math.max(3, width / 160) });
        }
      }
      const n = finished.length;
      say(n === 1 ? "1 area drawn" : n + " areas drawn");
    }

    function say(text) {
      const count = document.getElementById("area-count");
      if (count) {
        count.textContent = text;
      }
    }

    draw.addEventListener("click", (event) => {
      const box = draw.getBoundingClientRect();
      const x = Math.round(((event.clientX - box.left) * width) / box.width);
      const y = Math.round(((event.clientY - box.top) * height) / box.height);
      points.push([clamp(x, 0, width), clamp(y, 0, height)]);
      redraw();
    });

    button("area-finish", () => {
      if (points.length < MIN_POINTS) {
        say("An area needs at least 3 points."); // a polygon needs three corners
        return;
      }
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "area";
      input.value = points.flat().join(",");
      areas.appendChild(input);
      points = [];
      redraw();
      changed();
    });

    button("area-undo", () => {
      if (points.length) {
        points.pop(); // the last point of the area being drawn
        redraw();
        return;
      }
      const last = areas.querySelector("input[name=area]:last-of-type");
      if (last) {
        last.remove(); // else the last finished area
        redraw();
        changed();
      }
    });

    button("area-clear", () => {
      const had = areas.querySelectorAll("input[name=area]").length > 0;
      areas.replaceChildren();
      points = [];
      redraw();
      if (had) {
        changed();
      }
    });

    slider();
    previewFailures();
    redraw();
  }

  // The frame slider, the previous and next buttons, and each subject's row: a button and
  // its timeline show the frame of its best sighting.
  function slider() {
    const frame = document.getElementById("frame");
    const time = document.getElementById("frame-time");
    if (!frame || !time) {
      return;
    }
    const fps = Number(frame.dataset.fps) || 25;
    const note = document.getElementById("frame-note");
    function shown() {
      const seconds = (Number(frame.value) / fps).toFixed(2);
      time.textContent = "frame " + frame.value + " · " + seconds + " s";
      if (note) {
        note.hidden = frame.value !== note.dataset.frame; // it explains the first frame only
      }
    }
    function show(number) {
      const clamped = clamp(number, Number(frame.min), Number(frame.max));
      if (clamped === Number(frame.value)) {
        return;
      }
      frame.value = String(clamped);
      shown();
      frame.dispatchEvent(new Event("change", { bubbles: true })); // htmx fetches it
    }
    frame.addEventListener("input", shown);
    button("frame-prev", () => show(Number(frame.value) - 1));
    button("frame-next", () => show(Number(frame.value) + 1));
    for (const element of document.querySelectorAll(".jump, svg.timeline")) {
      element.addEventListener("click", () => show(Number(element.dataset.frame)));
    }
  }

  // A preview picture the server refused (a view that could not be recorded, a clip
  // decided elsewhere, a session ended) is replaced by the server's one line, never left
  // broken or stale.
  function previewFailures() {
    const preview = document.getElementById("preview");
    if (!preview) {
      return;
    }
    preview.addEventListener(
      "error",
      (event) => {
        const image = event.target;
        if (!(image instanceof HTMLImageElement)) {
          return;
        }
        const src = image.getAttribute("src");
        image.remove();
        fetch(src, { credentials: "same-origin" })
          .then((response) => {
            if (response.redirected || response.status === 401) {
              return "Your session has ended. Please log in again.";
            }
            return response.ok ? "The preview could not be shown." : response.text();
          })
          .catch(() => "The preview could not be loaded: the review page is not answering.")
          .then((text) => {
            const line = document.createElement("p");
            line.className = "message";
            line.setAttribute("role", "alert");
            line.textContent = text.split("\n")[0].slice(0, 300);
            preview.replaceChildren(line);
          });
      },
      true, // error events do not bubble
    );
  }

  function pairs(text) {
    const values = text.split(",");
    const out = [];
    for (let i = 0; i + 1 < values.length; i += 2) {
      out.push(values[i] + "," + values[i + 1]);
    }
    return out.join(" ");
  }

  function clamp(value, low, high) {
    return Math.min(high, Math.max(low, value));
  }

  function button(id, action) {
    const element = document.getElementById(id);
    if (element) {
      element.addEventListener("click", action);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
