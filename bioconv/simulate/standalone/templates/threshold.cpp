{# bioconv: derived from Brian2's cpp_standalone/templates/threshold.cpp (UPSTREAM.toml). Changed: with
   the preference devices.bioconv_standalone.block_thresholds, a condition that only reads values (no
   function call) is computed on blocks of neurons without a branch (vectorized), and only a block with
   a spike is scanned for its spikes, from the conditions already computed (each condition is
   evaluated once, as in Brian2's loop). Same spikes, same order. #}
{# USES_VARIABLES { N } #}
{% extends 'common_group.cpp' %}
{% block maincode %}
       {# not_refractory and lastspike are added as needed_variables in the
       Thresholder class, we cannot use the USES_VARIABLE mechanism
       conditionally
       Same goes for "eventspace" (e.g. spikespace) which depends on the type of
       event #}

    //// MAIN CODE ////////////
    // scalar code
    const int _vectorisation_idx = -1;
    {{scalar_code|autoindent}}

    {#  Get the name of the array that stores these events (e.g. the spikespace array) #}
    {% set _eventspace = get_array_name(eventspace_variable) %}

    long _count = 0;
    {% set _block = bioconv_threshold_block(vector_code, owner) %}
    {% if _block %}
    // bioconv: blocked threshold test (block_thresholds)
    char _conds[{{_block}}];
    for(size_t _block=0; _block<N; _block+={{_block}})
    {
        if(_block+{{_block}} <= N)
        {
            // the block's conditions, computed once, without a branch (vectorized)
            long _any = 0;
            #pragma omp simd reduction(|:_any)
            for(size_t _idx=_block; _idx<_block+{{_block}}; _idx++)
            {
                const size_t _vectorisation_idx = _idx;
                {{vector_code|autoindent}}
                _conds[_idx-_block] = _cond;
                _any |= _cond;
            }
            if(!_any) continue;
            for(size_t _idx=_block; _idx<_block+{{_block}}; _idx++)
            {
                if(_conds[_idx-_block]) {
                    {{_eventspace}}[_count++] = _idx;
                    {% if _uses_refractory %}
                    {{not_refractory}}[_idx] = false;
                    {{lastspike}}[_idx] = {{t}};
                    {% endif %}
                }
            }
        }
        else
        {
            // the last, partial block: Brian2's loop
            for(size_t _idx=_block; _idx<N; _idx++)
            {
                const size_t _vectorisation_idx = _idx;
                {{vector_code|autoindent}}
                if(_cond) {
                    {{_eventspace}}[_count++] = _idx;
                    {% if _uses_refractory %}
                    {{not_refractory}}[_idx] = false;
                    {{lastspike}}[_idx] = {{t}};
                    {% endif %}
                }
            }
        }
    }
    {% else %}
    for(size_t _idx=0; _idx<N; _idx++)
    {
        const size_t _vectorisation_idx = _idx;
        {{vector_code|autoindent}}
        if(_cond) {
            {{_eventspace}}[_count++] = _idx;
            {% if _uses_refractory %}
            {{not_refractory}}[_idx] = false;
            {{lastspike}}[_idx] = {{t}};
            {% endif %}
        }
    }
    {% endif %}
    {{_eventspace}}[N] = _count;
{% endblock %}

{% block after_code %}
{% set _eventspace = get_array_name(eventspace_variable) %}
{{_eventspace}}[N] = 0;  // Note that this is not an off-by-1-error: the array has N+1 elements
{% endblock %}
