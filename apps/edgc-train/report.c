/*
 * report.c - edgc-train's progress lines, --log lines and summary; see report.h.
 */
#include "report.h"

#include <math.h>
#include <stdint.h>

#include "ranks.h"

static void fmt_duration(char* out, size_t n, double s)
{
    if (!(s >= 0) || s > 1e7) {
        snprintf(out, n, "?");
    } else if (s >= 3600) {
        snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    } else {
        snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    }
}

const char* report_phase(const edgc_step_stats* s)
{
    if (s->mode == EDGC_MODE_DENSE) return "dense";
    if (s->mode == EDGC_MODE_POWERSGD) return "powersgd";
    return s->phase == EDGC_PHASE_PROFILE  ? "profile"
           : s->phase == EDGC_PHASE_WARMUP ? "warmup"
                                           : "compress";
}

/* A number for JSON, which has no NaN: null instead. */
static const char* num(char* buf, size_t n, double v, int digits)
{
    if (isfinite(v))
        snprintf(buf, n, "%.*g", digits, v);
    else
        snprintf(buf, n, "null");
    return buf;
}

void report_log(FILE* log, const step_report* r)
{
    const edgc_step_stats* s = r->s;
    const pipeline* q = r->q;
    char h[32], vl[32], ce[32], wb[32], ds[32];
    fprintf(log,
            "{\"step\":%d,\"loss\":%.6g,\"val_loss\":%s,\"lr\":%.6g,\"grad_norm\":%.6g,"
            "\"rank\":%d,\"phase\":\"%s\",\"entropy\":%s,\"compression_error\":%s,"
            "\"bytes_sent\":%llu,\"bytes_dense\":%llu,\"total_sent\":%llu,"
            "\"sync_ms\":%.4g,\"forward_ms\":%.4g,\"backward_ms\":%.4g,"
            "\"optimizer_ms\":%.4g,\"stage\":%d,\"wait_ms\":%.4g,\"bwd_mb_ms\":%.4g,"
            "\"dense_sync_ms\":%s,\"wam_budget_ms\":%s,\"time_s\":%.4f}\n",
            r->step, r->loss, num(vl, sizeof vl, r->val_loss, 6), r->lr, r->grad_norm, s->rank,
            report_phase(s), num(h, sizeof h, s->entropy_sampled ? s->entropy : NAN, 6),
            num(ce, sizeof ce, s->compression_error, 4), (unsigned long long)s->bytes_sent,
            (unsigned long long)s->bytes_dense, (unsigned long long)s->total_sent, r->sync_ms,
            q->forward_ms, q->backward_ms, r->opt_ms, q->stage, q->wait_ms,
            q->backward_ms / q->micro, num(ds, sizeof ds, s->dense_sync_ms, 4),
            num(wb, sizeof wb, s->wam_budget_ms, 4), r->time_s);
    fflush(log);
}

void report_progress(const step_report* r, double tokens_per_step, int steps_done, double spent_s,
                     uint64_t sent_total, uint64_t dense_total)
{
    const edgc_step_stats* s = r->s;
    char eta[32];
    fmt_duration(eta, sizeof eta, spent_s / steps_done * (r->steps - r->step));
    say("step %5d/%d | loss %.4f | %7.0f tok/s | %-8s r=%-3d | %6.3f / %6.3f MB | "
        "ratio %5.1fx | ETA %s\n",
        r->step, r->steps, r->loss, steps_done * tokens_per_step / spent_s, report_phase(s),
        s->rank, s->bytes_sent / 1e6, s->bytes_dense / 1e6,
        dense_total ? (double)dense_total / sent_total : 1.0, eta);
}

void report_summary(const run_summary* r)
{
    const step_times* t = &r->t;
    double busy = t->fwd + t->bwd + t->wait + t->sync + t->opt;
    double tok_s = r->steps * r->tokens_per_step / r->total_s;
    double gflops = r->flops_per_token * tok_s / 1e9;
    double ratio = r->sent_total ? (double)r->dense_total / r->sent_total : 1.0;
    say("\ndone: %d steps in %.1f s | final val loss %.4f", r->steps, r->total_s, r->val_loss);
    if (r->skipped) say(" | %d steps skipped (non-finite gradients)", r->skipped);
    say("\nsent %.1f MB vs %.1f MB dense: %.1fx fewer bytes\n", r->sent_total / 1e6,
        r->dense_total / 1e6, ratio);
    say("time: forward %.1f s (%.0f%%), backward %.1f s (%.0f%%), sync %.1f s (%.0f%%), "
        "optimizer %.1f s (%.0f%%)",
        t->fwd, 100 * t->fwd / busy, t->bwd, 100 * t->bwd / busy, t->sync, 100 * t->sync / busy,
        t->opt, 100 * t->opt / busy);
    if (r->stages > 1) say(", pipeline wait %.1f s (%.0f%%)", t->wait, 100 * t->wait / busy);
    say("%s\n", r->stages > 1 ? " (stage 0)" : "");
    double peak_pct = r->peak_gflops > 0 ? 100 * gflops / r->peak_gflops : NAN;
    say("throughput: %.0f tokens/s, %.2f GFLOP/s (model flops)", tok_s, gflops);
    if (isfinite(peak_pct))
        say(", %.0f%% of the %.1f GFLOP/s that sgemm reaches on these ranks", peak_pct,
            r->peak_gflops);
    say("\n");
    if (r->mode == EDGC_MODE_EDGC && isfinite(r->dense_sync_ms)) {
        /* the profile timed dense steps on this very link: what a dense run would have paid */
        double dense_sync = r->dense_sync_ms * 1e-3 * r->steps, saved = dense_sync - t->sync;
        say("dense would have spent %.1f s in sync at the measured %.1f ms per step (this run: "
            "%.1f s): %.1f s %s, %.0f%% of the dense run's time\n",
            dense_sync, r->dense_sync_ms, t->sync, fabs(saved),
            saved >= 0 ? "saved" : "more than dense",
            100 * fabs(saved) / (busy - t->sync + dense_sync));
    }
    /* one machine-readable line for scripts */
    say("summary: steps=%d val_loss=%.5f sent_mb=%.3f dense_mb=%.3f tok_s=%.1f gflops=%.3f "
        "fwd_pct=%.1f bwd_pct=%.1f sync_pct=%.1f opt_pct=%.1f wait_pct=%.1f train_s=%.2f "
        "peak_pct=%.1f\n",
        r->steps, r->val_loss, r->sent_total / 1e6, r->dense_total / 1e6, tok_s, gflops,
        100 * t->fwd / busy, 100 * t->bwd / busy, 100 * t->sync / busy, 100 * t->opt / busy,
        100 * t->wait / busy, r->total_s - t->eval, isfinite(peak_pct) ? peak_pct : 0.0);
}
