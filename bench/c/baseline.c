/* Baseline for the benchmarks: N GETs of URL, C at a time, through libcurl's
 * multi socket API driven by epoll (the same shape as the Lua drivers).
 * Easy handles are reused. Prints "ok=<n> bytes=<n>".
 * Usage: baseline URL N C */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

static int ep;
static long timeout_ms = -1;
static long long bytes;

static size_t on_write(char *p, size_t s, size_t n, void *u) {
  (void)p; (void)u;
  bytes += (long long)(s * n);
  return s * n;
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *u, void *sp) {
  (void)e; (void)u;
  struct epoll_event ev = {0};
  ev.data.fd = fd;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    return 0;
  }
  ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
  if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) != 0) epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  (void)sp;
  return 0;
}

static int on_timer(CURLM *m, long ms, void *u) {
  (void)m; (void)u;
  timeout_ms = ms;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: baseline URL N C\n"); return 2; }
  const char *url = argv[1];
  long total = atol(argv[2]), conc = atol(argv[3]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  ep = epoll_create1(0);
  CURLM *m = curl_multi_init();
  curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, conc);
  long started = 0, ok = 0, done = 0;
  for (long i = 0; i < conc && started < total; i++, started++) {
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_multi_add_handle(m, e);
  }
  int running = 0;
  curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);
  struct epoll_event evs[1024];
  while (done < total) {
    int n = epoll_wait(ep, evs, 1024, timeout_ms < 0 ? 1000 : (int)timeout_ms);
    if (n <= 0) {
      curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);
    } else {
      for (int i = 0; i < n; i++) {
        int mask = (evs[i].events & (EPOLLIN | EPOLLHUP) ? CURL_CSELECT_IN : 0) |
                   (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                   (evs[i].events & EPOLLERR ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(m, evs[i].data.fd, mask, &running);
      }
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL *e = msg->easy_handle;
      if (msg->data.result == CURLE_OK) ok++;
      done++;
      curl_multi_remove_handle(m, e);
      if (started < total) { started++; curl_multi_add_handle(m, e); }
      else curl_easy_cleanup(e);
    }
    if (started > done && running == 0 && timeout_ms < 0)
      curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);
  }
  printf("ok=%ld bytes=%lld\n", ok, bytes);
  curl_multi_cleanup(m);
  return ok == total ? 0 : 1;
}
