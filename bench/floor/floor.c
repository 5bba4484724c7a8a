/* The floor of a binding, for bench/instructions.sh only (never installed):
 * a Lua 5.4 C module named "curl" with just the calls that
 * bench/drivers/poller.lua and ../shared/bench/luv_same_shape.lua make,
 * written the leanest way a binding can still be called safe:
 * luaL_checkudata on each object argument and lua_pcall around each Lua
 * callback (an error in a callback must not longjmp through libcurl).
 * Nothing else: no use-after-Close checks, no error values, no call
 * context, no keeping an easy alive while its multi runs it (each easy is
 * pinned in the registry until Close), no option or info tables.
 *
 * Built with -DFLOOR_BARE, the checks and the pcalls go too (lua_touserdata,
 * lua_call): what no binding may do, measured to show where the bottom is.
 *
 * Whatever this costs per transfer above the C baseline is what the driver's
 * own Lua, the interpreter's calls and luv cost with a binding that does
 * (almost) nothing: no binding can get under it on the same driver. */
#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <sys/epoll.h>

#ifdef FLOOR_BARE
#define CHECK(L, i, name) lua_touserdata(L, i)
#define CALL(L, n, r) (lua_call(L, n, r), 0)
#else
#define CHECK(L, i, name) luaL_checkudata(L, i, name)
#define CALL(L, n, r) lua_pcall(L, n, r, 0)
#endif

typedef struct { CURL *h; int self, write_fn; lua_State *L; } Easy;
typedef struct { CURLM *h; int timer_fn, socket_fn; lua_State *L; } Multi;
typedef struct { int ep; long ms; } Poller;

static size_t on_write(char *p, size_t size, size_t n, void *u) {
  Easy *e = u;
  lua_State *L = e->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->write_fn);
  lua_pushlstring(L, p, size * n);
  if (CALL(L, 1, 1)) { lua_pop(L, 1); return 0; }
  lua_pop(L, 1);
  return size * n;
}

static int easy_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  Easy *e = lua_newuserdatauv(L, sizeof(Easy), 0);
  e->h = curl_easy_init();
  e->L = L;
  luaL_setmetatable(L, "floor.Easy");
  lua_pushvalue(L, -1);
  e->self = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, 1, "URL");
  curl_easy_setopt(e->h, CURLOPT_URL, lua_tostring(L, -1));
  lua_getfield(L, 1, "NoSignal");
  curl_easy_setopt(e->h, CURLOPT_NOSIGNAL, (long)lua_toboolean(L, -1));
  lua_getfield(L, 1, "WriteFunction");
  e->write_fn = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 2);
  curl_easy_setopt(e->h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e->h, CURLOPT_WRITEDATA, e);
  curl_easy_setopt(e->h, CURLOPT_PRIVATE, e);
  return 1;
}

static int push_info(lua_State *L, CURLINFO info) {
  Easy *e = CHECK(L, 1, "floor.Easy");
  if ((info & CURLINFO_TYPEMASK) == CURLINFO_OFF_T) {
    curl_off_t v = 0;
    curl_easy_getinfo(e->h, info, &v);
    lua_pushinteger(L, v);
  } else {
    long v = 0;
    curl_easy_getinfo(e->h, info, &v);
    lua_pushinteger(L, v);
  }
  return 1;
}
static int easy_size(lua_State *L) { return push_info(L, CURLINFO_SIZE_DOWNLOAD_T); }
static int easy_code(lua_State *L) { return push_info(L, CURLINFO_RESPONSE_CODE); }

static int easy_close(lua_State *L) {
  Easy *e = CHECK(L, 1, "floor.Easy");
  if (e->h) {
    curl_easy_cleanup(e->h);
    e->h = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, e->self);
  }
  return 0;
}

static int on_timer(CURLM *h, long ms, void *u) {
  Multi *m = u;
  lua_State *L = m->L;
  (void)h;
  lua_rawgeti(L, LUA_REGISTRYINDEX, m->timer_fn);
  lua_pushinteger(L, ms);
  if (CALL(L, 1, 0)) lua_pop(L, 1);
  return 0;
}

static int on_socket(CURL *h, curl_socket_t fd, int what, void *u, void *sp) {
  Multi *m = u;
  lua_State *L = m->L;
  Easy *e = NULL;
  (void)sp;
  curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&e);
  lua_rawgeti(L, LUA_REGISTRYINDEX, m->socket_fn);
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->self);
  lua_pushinteger(L, fd);
  lua_pushinteger(L, what);
  if (CALL(L, 3, 0)) lua_pop(L, 1);
  return 0;
}

/* The Poller as socket and timer function: epoll, no Lua. */
static int poller_socket(CURL *h, curl_socket_t fd, int what, void *u, void *sp) {
  Poller *p = u;
  struct epoll_event ev = {0};
  (void)h;
  (void)sp;
  ev.data.fd = fd;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(p->ep, EPOLL_CTL_DEL, fd, NULL);
    return 0;
  }
  ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
  if (epoll_ctl(p->ep, EPOLL_CTL_MOD, fd, &ev) != 0) epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev);
  return 0;
}

static int poller_timer(CURLM *h, long ms, void *u) {
  (void)h;
  ((Poller *)u)->ms = ms;
  return 0;
}

static int poller_new(lua_State *L) {
  Poller *p = lua_newuserdatauv(L, sizeof(Poller), 0);
  p->ep = epoll_create1(0);
  p->ms = -1;
  luaL_setmetatable(L, "floor.Poller");
  return 1;
}

static int poller_dispatch(lua_State *L) {
  Poller *p = CHECK(L, 1, "floor.Poller");
  Multi *m = CHECK(L, 2, "floor.Multi");
  long wait = luaL_optinteger(L, 3, 0);
  int running = 0;
  struct epoll_event evs[256];
  m->L = L;
  if (p->ms >= 0 && p->ms < wait) wait = p->ms;
  int n = epoll_wait(p->ep, evs, 256, (int)wait);
  if (n <= 0) curl_multi_socket_action(m->h, CURL_SOCKET_TIMEOUT, 0, &running);
  for (int i = 0; i < n; i++) {
    int mask = (evs[i].events & (EPOLLIN | EPOLLHUP) ? CURL_CSELECT_IN : 0) |
               (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
               (evs[i].events & EPOLLERR ? CURL_CSELECT_ERR : 0);
    curl_multi_socket_action(m->h, evs[i].data.fd, mask, &running);
  }
  lua_pushinteger(L, running);
  return 1;
}

static int multi_new(lua_State *L) {
  Multi *m = lua_newuserdatauv(L, sizeof(Multi), 0);
  m->h = curl_multi_init();
  m->L = L;
  m->timer_fn = m->socket_fn = LUA_NOREF;
  luaL_setmetatable(L, "floor.Multi");
  return 1;
}

/* SetOpt_TimerFunction / SetOpt_SocketFunction: a Lua function or the Poller. */
static int multi_set_fn(lua_State *L, int socket) {
  Multi *m = CHECK(L, 1, "floor.Multi");
  Poller *p = luaL_testudata(L, 2, "floor.Poller");
  lua_settop(L, 2);
  if (socket) {
    curl_multi_setopt(m->h, CURLMOPT_SOCKETFUNCTION, p ? poller_socket : on_socket);
    curl_multi_setopt(m->h, CURLMOPT_SOCKETDATA, p ? (void *)p : (void *)m);
    if (!p) m->socket_fn = luaL_ref(L, LUA_REGISTRYINDEX);
  } else {
    curl_multi_setopt(m->h, CURLMOPT_TIMERFUNCTION, p ? poller_timer : on_timer);
    curl_multi_setopt(m->h, CURLMOPT_TIMERDATA, p ? (void *)p : (void *)m);
    if (!p) m->timer_fn = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 0;
}
static int multi_timer_fn(lua_State *L) { return multi_set_fn(L, 0); }
static int multi_socket_fn(lua_State *L) { return multi_set_fn(L, 1); }

static int multi_maxconnects(lua_State *L) {
  Multi *m = CHECK(L, 1, "floor.Multi");
  curl_multi_setopt(m->h, CURLMOPT_MAXCONNECTS, (long)luaL_checkinteger(L, 2));
  return 0;
}

static int multi_socket_action(lua_State *L) {
  Multi *m = CHECK(L, 1, "floor.Multi");
  int running = 0;
  m->L = L;
  curl_multi_socket_action(m->h, (curl_socket_t)luaL_checkinteger(L, 2),
                           (int)luaL_checkinteger(L, 3), &running);
  lua_pushinteger(L, running);
  return 1;
}

/* msg, result, remaining, easy (as the module's InfoRead) */
static int multi_info_read(lua_State *L) {
  Multi *m = CHECK(L, 1, "floor.Multi");
  int left = 0;
  CURLMsg *msg = curl_multi_info_read(m->h, &left);
  Easy *e = NULL;
  if (!msg) {
    lua_pushinteger(L, 0);
    lua_pushnil(L);
    lua_pushinteger(L, left);
    return 3;
  }
  curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&e);
  lua_pushinteger(L, msg->msg);
  lua_pushinteger(L, msg->data.result);
  lua_pushinteger(L, left);
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->self);
  return 4;
}

static int multi_add(lua_State *L) {
  Multi *m = CHECK(L, 1, "floor.Multi");
  Easy *e = CHECK(L, 2, "floor.Easy");
  m->L = e->L = L;
  curl_multi_add_handle(m->h, e->h);
  return 0;
}

static int multi_remove(lua_State *L) {
  Multi *m = CHECK(L, 1, "floor.Multi");
  Easy *e = CHECK(L, 2, "floor.Easy");
  m->L = L;
  curl_multi_remove_handle(m->h, e->h);
  return 0;
}

static int multi_close(lua_State *L) {
  Multi *m = CHECK(L, 1, "floor.Multi");
  if (m->h) {
    curl_multi_cleanup(m->h);
    m->h = NULL;
  }
  return 0;
}

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

int luaopen_curl(lua_State *L) {
  static const luaL_Reg easy[] = {{"GetInfo_SizeDownloadT", easy_size},
                                  {"GetInfo_ResponseCode", easy_code},
                                  {"Close", easy_close},
                                  {NULL, NULL}};
  static const luaL_Reg multi[] = {{"SetOpt_TimerFunction", multi_timer_fn},
                                   {"SetOpt_SocketFunction", multi_socket_fn},
                                   {"SetOpt_MaxConnects", multi_maxconnects},
                                   {"SocketAction", multi_socket_action},
                                   {"InfoRead", multi_info_read},
                                   {"AddHandle", multi_add},
                                   {"RemoveHandle", multi_remove},
                                   {"Close", multi_close},
                                   {NULL, NULL}};
  static const luaL_Reg poller[] = {{"Dispatch", poller_dispatch}, {NULL, NULL}};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  new_class(L, "floor.Easy", easy);
  new_class(L, "floor.Multi", multi);
  new_class(L, "floor.Poller", poller);
  lua_newtable(L);
  lua_pushcfunction(L, easy_new);
  lua_setfield(L, -2, "Easy");
  lua_pushcfunction(L, multi_new);
  lua_setfield(L, -2, "Multi");
  lua_pushcfunction(L, poller_new);
  lua_setfield(L, -2, "Poller");
#define CONST(n) (lua_pushinteger(L, n), lua_setfield(L, -2, #n))
  CONST(CURL_POLL_IN);
  CONST(CURL_POLL_OUT);
  CONST(CURL_POLL_INOUT);
  CONST(CURL_POLL_REMOVE);
  CONST(CURL_CSELECT_IN);
  CONST(CURL_CSELECT_OUT);
  CONST(CURL_CSELECT_ERR);
  CONST(CURLMSG_DONE);
  CONST(CURL_SOCKET_TIMEOUT);
  return 1;
}
