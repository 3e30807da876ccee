// The comparison app for bench/run.py: a no-op issues.opened handler.
// It counts the handler's runs (one integer increment) and prints the count on SIGTERM, so the
// runner can check that every 2xx answer ran the handler.
let handled = 0;

/** @param {import('probot').Probot} app */
export default (app) => {
  app.on("issues.opened", async () => {
    handled += 1;
  });
  process.once("SIGTERM", () => {
    process.stdout.write(`\nBENCH_HANDLED ${handled}\n`);
    process.exit(0);
  });
};
