/* The web console's files: GET /console/ and /console/<file>, served from
 * the table cmake/embed.cmake compiles in. The files are public (they hold
 * no data); everything the console shows comes from the signed API calls it
 * makes from the browser, under the signed-in identity's policies. */
#include "api_int.h"
#include "console_assets.h"
#include <string.h>

const unsigned char *kn_api__console_asset(const char *name, size_t *size, const char **type)
{
    for (const kn_console_asset *a = kn_console_assets; a->name; a++)
        if (strcmp(a->name, name) == 0) {
            *size = a->size;
            if (type)
                *type = a->content_type;
            return a->data;
        }
    return NULL;
}

kn_status kn_api__console(kn_api_call *c)
{
    kn_api_response *r = c->resp;
    const char *name = "index.html";
    if (c->match->n_params > 0)
        name = c->match->params[0].value;
    size_t size;
    const char *type;
    const unsigned char *data = kn_api__console_asset(name, &size, &type);
    if (!data) {
        c->err_code = "NotFound";
        c->err_http = 404;
        return kn_err_set(&c->err, KN_NOT_FOUND, "The console has no file named '%s'.", name);
    }
    r->body.len = 0;
    if (kn_buf_append(&r->body, data, size))
        return kn_err_set(&c->err, KN_NOMEM, "out of memory");
    r->status = 200;
    snprintf(r->content_type, sizeof r->content_type, "%s", type);
    /* scripts only from here, no inline script, no framing: a resource name
     * that smuggles markup in cannot run anything */
    kn_api__add_header(r, "Content-Security-Policy",
           "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
           "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'");
    kn_api__add_header(r, "X-Content-Type-Options", "nosniff");
    kn_api__add_header(r, "Referrer-Policy", "no-referrer");
    kn_api__add_header(r, "Cache-Control", "no-cache");
    c->raw_response = true;
    return KN_OK;
}
