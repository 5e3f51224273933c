// Image comparison: a wipe slider between the original and a chosen decoded image.
(function () {
  "use strict";
  document.querySelectorAll(".image-item").forEach(function (item) {
    var top = item.querySelector(".compare-top");
    var bottom = item.querySelector(".compare-bottom");
    var slider = item.querySelector(".compare-slider");
    var select = item.querySelector(".compare-select");
    if (!top || !bottom || !slider) { return; }
    var wipe = function () { top.style.clipPath = "inset(0 " + (100 - Number(slider.value)) + "% 0 0)"; };
    slider.addEventListener("input", wipe);
    if (select) {
      select.addEventListener("change", function () { bottom.src = select.value; });
      if (select.value) { bottom.src = select.value; }
    }
    wipe();
  });
})();
