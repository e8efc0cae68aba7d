{# bioconv's own template (no Brian2 counterpart; it extends Brian2's common_group.cpp, recorded in
   UPSTREAM.toml): the events of a convolution whose kernel is stored once (bioconv.simulate.shared_conv).
   For every spike of the source in this step, in spike-space order, the targets are computed from the
   geometry: the source unit (c, y, x) of copy b reads, through a non-overlapping average pooling if
   there is one, position (uy, ux) of the convolution's input; output (co, oy, ox) of copy b receives
   it through tap (ky, kx) when oy * sh - ph + ky = uy (and likewise for x). The event code is Brian2's
   code generation of the synapse model's on_pre, with w = kernel tap _kidx and the postsynaptic
   variables at _postidx. #}
{# USES_VARIABLES { w } #}
{% extends 'common_group.cpp' %}

{% block maincode %}
    const size_t _vectorisation_idx = -1;
    {{scalar_code|autoindent}}

    {% set _eventspace = get_array_name(eventspace_variable) %}
    const int32_t _n_events = {{_eventspace}}[_num{{eventspace_variable.name}}-1];
    for(int32_t _k=0; _k<_n_events; _k++)
    {
        const int32_t _source = {{_eventspace}}[_k];
        const int32_t _copy = _source / {{n_source}};
        const int32_t _unit = _source - _copy * {{n_source}};
        const int32_t _ci = _unit / {{in_h * in_w}};
        const int32_t _y = (_unit / {{in_w}}) % {{in_h}};
        const int32_t _x = _unit % {{in_w}};
        {% if pool %}
        // the pooling window that holds the unit (none at a remainder the windows do not cover)
        const int32_t _uy = (_y + {{pool_padding[0]}}) / {{pool[0]}};
        const int32_t _ux = (_x + {{pool_padding[1]}}) / {{pool[1]}};
        if(_uy >= {{conv_h}} || _ux >= {{conv_w}}) continue;
        {% else %}
        const int32_t _uy = _y;
        const int32_t _ux = _x;
        {% endif %}
        // the taps that reach an output along each axis, and that output's row / column
        int32_t _tap_y[{{kh}}], _row[{{kh}}], _tap_x[{{kw}}], _col[{{kw}}];
        int32_t _n_y = 0, _n_x = 0;
        for(int32_t _ky=0; _ky<{{kh}}; _ky++)
        {
            const int32_t _num = _uy + {{ph}} - _ky;
            if(_num >= 0 && _num % {{sh}} == 0 && _num / {{sh}} < {{out_h}}) { _tap_y[_n_y] = _ky; _row[_n_y] = _num / {{sh}}; _n_y++; }
        }
        for(int32_t _kx=0; _kx<{{kw}}; _kx++)
        {
            const int32_t _num = _ux + {{pw}} - _kx;
            if(_num >= 0 && _num % {{sw}} == 0 && _num / {{sw}} < {{out_w}}) { _tap_x[_n_x] = _kx; _col[_n_x] = _num / {{sw}}; _n_x++; }
        }
        // each (tap, output position) pair once as offsets, then every output channel through them:
        // the innermost loop is two additions per event delivered
        int32_t _koff[{{kh * kw}}], _poff[{{kh * kw}}];
        int32_t _n_taps = 0;
        for(int32_t _a=0; _a<_n_y; _a++)
            for(int32_t _b=0; _b<_n_x; _b++)
            {
                _koff[_n_taps] = _tap_y[_a] * {{kw}} + _tap_x[_b];
                _poff[_n_taps] = _row[_a] * {{out_w}} + _col[_b];
                _n_taps++;
            }
        const size_t _kernel_base = (size_t){{kernel_stride}} * _copy + (size_t)_ci * {{out_c * kh * kw}};
        const size_t _target_base = (size_t)_copy * {{n_target}};
        for(int32_t _co=0; _co<{{out_c}}; _co++)
        {
            const size_t _kernel_co = _kernel_base + (size_t)_co * {{kh * kw}};
            const size_t _target_co = _target_base + (size_t)_co * {{out_h * out_w}};
            for(int32_t _t=0; _t<_n_taps; _t++)
            {
                const size_t _kidx = _kernel_co + _koff[_t];
                const size_t _postidx = _target_co + _poff[_t];
                const size_t _vectorisation_idx = _postidx;
                {{vector_code|autoindent}}
            }
        }
    }
{% endblock %}
